#!/usr/bin/env bash
# Run every benchmark with its CPU defaults, one after the other (they would skew
# each other's timings if run together). Results land in bench/results/*.json.
#
#   bench/run_all.sh                 # a fresh cache: trains the demo's reference model first
#   SYNTHGATE_CACHE=~/.cache/synthgate bench/run_all.sh
#
# The experiments run leaves a trained demo checkpoint in the cache; the extraction
# run then uses it, so that its bf16-vs-fp32 tolerance is measured on trained weights.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CACHE=${SYNTHGATE_CACHE:-$(mktemp -d -t synthgate-bench-XXXXXX)}
[[ -z "${SYNTHGATE_CACHE:-}" ]] && trap 'rm -rf "$CACHE"' EXIT

"$PY" bench/experiments.py --cache "$CACHE"
CHECKPOINT=$(find "$CACHE/models" -name densenet121.pt -print -quit 2>/dev/null || true)
"$PY" bench/extraction.py ${CHECKPOINT:+--checkpoint "$CHECKPOINT"}
"$PY" bench/neighbours.py
