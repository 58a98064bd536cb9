#!/usr/bin/env bash
# Run every benchmark with its CPU defaults, one after the other (they would skew
# each other's timings if run together). Results land in bench/results/*.json.
#
#   bench/run_all.sh                           # fresh cache: trains the demo's reference model first
#   SYNTHGATE_CACHE=~/.cache/synthgate bench/run_all.sh
#   THREADS=1 bench/run_all.sh                 # on a machine shared with other jobs (see README)
#
# The experiments run leaves a trained demo checkpoint in the cache; the extraction
# run then uses it, so that its bf16-vs-fp32 tolerance is measured on trained weights.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CACHE=${SYNTHGATE_CACHE:-$(mktemp -d -t synthgate-bench-XXXXXX)}
[[ -z "${SYNTHGATE_CACHE:-}" ]] && trap 'rm -rf "$CACHE"' EXIT
THREAD_ARGS=(${THREADS:+--threads "$THREADS"})
SUFFIX=${THREADS:+-${THREADS}thread}

"$PY" bench/experiments.py --cache "$CACHE" "${THREAD_ARGS[@]}" --out "experiments-cpu$SUFFIX.json"
CHECKPOINT=$(find "$CACHE/models" -name densenet121.pt -print -quit 2>/dev/null || true)
"$PY" bench/extraction.py ${CHECKPOINT:+--checkpoint "$CHECKPOINT"} "${THREAD_ARGS[@]}" --out "extraction-cpu$SUFFIX.json"
"$PY" bench/neighbours.py "${THREAD_ARGS[@]}" --out "neighbours-cpu$SUFFIX.json"
"$PY" bench/memorisation.py "${THREAD_ARGS[@]}" --out "memorisation-cpu$SUFFIX.json"
"$PY" bench/summary.py
