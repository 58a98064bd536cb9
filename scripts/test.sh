#!/usr/bin/env bash
# Set up, then run synthgate's own test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# CI also installs Debian's chromium for the report's browser test (skipped, with the reason, elsewhere).
if [ -n "${CI:-}" ]; then bash scripts/browser-check.sh --install-only; fi
.venv/bin/ruff check .   # lint (configured in pyproject.toml) before the tests
# Serial: on CI's 2 cores two pytest-xdist workers were slower (31 min against 26), as both
# wait on the one demo build and training, then contend for the cores in torch.
exec .venv/bin/python -m pytest tests "$@"
