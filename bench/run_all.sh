#!/usr/bin/env bash
# Run every benchmark, one after the other (they would skew each other's timings if
# run together). Results land in bench/results/*-<device>.json.
#
#   bench/run_all.sh                           # CPU defaults; fresh cache: trains the demo's reference model first
#   SYNTHGATE_CACHE=~/.cache/synthgate bench/run_all.sh
#   THREADS=1 bench/run_all.sh                 # on a machine shared with other jobs (see README)
#   DEVICE=cuda bench/run_all.sh               # the GPU benchmarks at GPU sizes, plus the scale run: *-cuda.json
#
# The experiments run leaves a trained demo checkpoint in the cache; the extraction
# run then uses it, so that its bf16-vs-fp32 tolerance is measured on trained weights.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DEVICE=${DEVICE:-cpu}
CACHE=${SYNTHGATE_CACHE:-$(mktemp -d -t synthgate-bench-XXXXXX)}
[[ -z "${SYNTHGATE_CACHE:-}" ]] && trap 'rm -rf "$CACHE"' EXIT
THREAD_ARGS=(${THREADS:+--threads "$THREADS"})
SUFFIX=${THREADS:+-${THREADS}thread}

case "$DEVICE" in
  cpu)
    EXTRACTION=() NEIGHBOURS=() MEMORISATION=() ;;
  cuda)
    # Fail before any work when torch has no GPU (e.g. the CPU wheels: see README for the CUDA ones).
    "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else
        "bench/run_all.sh: DEVICE=cuda but torch " + torch.__version__ + " sees no CUDA device")'
    EXTRACTION=(--images 4096,2048 --batch-size 128)
    NEIGHBOURS=(--sizes 10000,100000 --shift-sizes 5000,20000)
    MEMORISATION=(--sizes 10000x100000) ;;
  *)
    echo "bench/run_all.sh: DEVICE must be cpu or cuda, not '$DEVICE'" >&2; exit 2 ;;
esac
DEVICE_ARGS=(--device "$DEVICE")

"$PY" bench/experiments.py --cache "$CACHE" "${THREAD_ARGS[@]}" --out "experiments-$DEVICE$SUFFIX.json"
CHECKPOINT=$(find "$CACHE/models" -name densenet121.pt -print -quit 2>/dev/null || true)
"$PY" bench/extraction.py "${DEVICE_ARGS[@]}" "${EXTRACTION[@]}" ${CHECKPOINT:+--checkpoint "$CHECKPOINT"} \
  "${THREAD_ARGS[@]}" --out "extraction-$DEVICE$SUFFIX.json"
"$PY" bench/neighbours.py "${DEVICE_ARGS[@]}" "${NEIGHBOURS[@]}" "${THREAD_ARGS[@]}" --out "neighbours-$DEVICE$SUFFIX.json"
"$PY" bench/memorisation.py "${DEVICE_ARGS[@]}" "${MEMORISATION[@]}" "${THREAD_ARGS[@]}" \
  --out "memorisation-$DEVICE$SUFFIX.json"
if [[ "$DEVICE" == cuda ]]; then  # on 2 CPU cores the scale run takes hours: run bench/scale.py on its own there
  "$PY" bench/scale.py "${DEVICE_ARGS[@]}" --sizes 10000 --resolutions 128,224 --out "scale-cuda.json"
fi
"$PY" bench/summary.py
