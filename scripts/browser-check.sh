#!/usr/bin/env bash
# Open the demo's HTML report in headless Chromium and check what a reader sees;
# the screenshot is kept at reports/demo-screenshot.png. With --install, or when
# CI is set, first installs Debian's chromium if it is missing (idempotent).
# Other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

install=${CI:+yes}
if [ "${1:-}" = "--install" ]; then
  install=yes
  shift
fi
if [ -n "$install" ] && ! command -v chromium >/dev/null 2>&1; then
  sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver
fi
exec .venv/bin/python -m pytest tests/e2e/test_report.py -k browser -rs "$@"
