#!/usr/bin/env bash
# Set up, then run synthgate's own test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# CI also installs Debian's chromium for the report's browser test (skipped, with the reason, elsewhere).
if [ -n "${CI:-}" ]; then bash scripts/browser-check.sh --install-only; fi
.venv/bin/ruff check .   # lint (configured in pyproject.toml) before the tests
# Two workers (pytest-xdist) by default: CI has 2 cores; the workers share one synthgate cache.
exec .venv/bin/python -m pytest tests -n "${SYNTHGATE_TEST_WORKERS:-2}" "$@"
