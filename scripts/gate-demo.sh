#!/usr/bin/env bash
# Set up, then run the quality gate on the embedded demo release.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest quality_checks --release=demo \
  --html=reports/demo.html --self-contained-html --junitxml=reports/demo.xml "$@"
