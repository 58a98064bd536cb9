#!/usr/bin/env bash
# Create .venv and install synthgate with its pinned CPU stack; idempotent and quick
# when nothing changed (a stamp records what was installed).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
# CPU wheels by default. On a GPU machine set e.g.
#   SYNTHGATE_TORCH_INDEX=https://download.pytorch.org/whl/cu130
# before running this script to install the CUDA build of the same versions.
TORCH_SPEC="torch==2.13.0 torchvision==0.28.0 torchxrayvision==1.5.7"

stamp=.venv/.synthgate-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if [ -n "${SYNTHGATE_TORCH_INDEX:-}" ]; then
  "${pip[@]}" --index-url "$SYNTHGATE_TORCH_INDEX" torch==2.13.0 torchvision==0.28.0
else
  # torch first, so that nothing later pulls the multi-GB CUDA build from the registry.
  "${pip[@]}" torch==2.13.0
fi
"${pip[@]}" $TORCH_SPEC -e ".[test]"

if .venv/bin/python -m pip list 2>/dev/null | grep -qi '^nvidia-' && [ -z "${SYNTHGATE_TORCH_INDEX:-}" ]; then
  echo "setup: CUDA packages (nvidia-*) were installed into .venv; expected the CPU stack" >&2
  exit 1
fi
echo "$want" > "$stamp"
