#!/usr/bin/env bash
# Open the HTML reports of the demo (cleared) and of defect-shuffled-labels (blocked) in
# headless Chromium at a 1280 px viewport and check what a reader sees: the verdict, the
# per-class summary and criteria tables, every figure and sample image decoded, nothing
# wider than the viewport. The screenshots are kept at reports/<release>-screenshot.png
# (CI uploads reports/). Other arguments go to pytest.
#   --install       first install Debian's chromium if it is missing (also when CI is set)
#   --install-only  only that (for a test script that runs the whole suite afterwards)
set -euo pipefail
cd "$(dirname "$0")/.."

install=${CI:+yes}
run_test=yes
case "${1:-}" in
  --install) install=yes; shift ;;
  --install-only) install=yes; run_test=; shift ;;
esac
if [ -n "$install" ] && ! command -v chromium >/dev/null 2>&1; then
  sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver
fi
[ -n "$run_test" ] || exit 0
exec .venv/bin/python -m pytest tests/e2e/test_report.py -k browser -rs "$@"
