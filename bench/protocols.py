"""Do the probe and the finetune learner give the same verdicts? Each release's utility criteria under both.

Why: the gate's default learner is the probe (linear heads on the frozen leakage-free
model's features: seconds on CPU); ``finetune`` retrains the whole DenseNet121 from the
leakage-free weights, as RoentGen's and the seeds' frameworks do, and costs minutes per
training on CPU. Whether the cheap protocol can stand in for the faithful one is a
measured fact, per release, not an assumption. Each release is gated three times,
only its utility criteria (``quality_checks/test_utility.py``), with the same policy:

- ``probe, policy grid``: what the gate runs on that release;
- ``probe`` and ``finetune`` on one smaller grid (``--sizes``, ``--ratios``, ``--seeds``):
  the same cells, samples, seeds and test images, differing only in ``--utility-mode``.

The record has, per run, every utility criterion's point, interval, judged value, bound
and outcome, the worst cell, the wall time and the grid's own compute time (None when
the grid came from the cache); and per release whether the verdicts agree. A grid given on the command line makes a gate run incomplete (no clearance
record): these runs measure, they never clear anything.

    .venv/bin/python bench/protocols.py --cache DIR --releases demo,defect-shuffled-labels --out protocols-demo-cpu.json
    .venv/bin/python bench/protocols.py --cache DIR --policy studies/kermany/policy.toml \\
        --releases DIR/releases/kermany-standin,DIR/releases/kermany-label-noise --out protocols-kermany-cpu.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, Run, log, set_threads

UTILITY_CHECKS = "quality_checks/test_utility.py"
GRID_DONE = re.compile(r"retraining grid: .*: done in ([0-9.]+) s")  # the gate's progress line, on a cache miss only
KEPT = ("value", "ci_low", "ci_high", "judged_on", "judged_value", "minimum", "maximum", "outcome", "note", "problem")


def gate_utility(release: str, cache: Path, policy: str | None, extra: list[str], folder: Path) -> dict:
    """One gate run of the release's utility criteria; what each criterion measured and the time taken."""
    summary = folder / "summary.json"
    command = [sys.executable, "-m", "pytest", UTILITY_CHECKS, f"--release={release}", f"--synthgate-cache={cache}",
               f"--gate-summary={summary}", "-q", "-p", "no:cacheprovider", *([f"--policy={policy}"] if policy else []),
               *extra]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if not summary.exists():
        raise RuntimeError(f"{release}: the gate wrote no summary (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    record = json.loads(summary.read_text())
    criteria = {criterion_key(c): {k: c[k] for k in KEPT} for c in record["criteria"] if c["family"] == "utility"}
    computed = GRID_DONE.search(done.stdout + done.stderr)
    return {"arguments": extra, "wall_s": round(seconds, 1), "grid_computed_s": float(computed[1]) if computed else None,
            "exit_code": done.returncode, "grid": record["policy"].get("grid"),
            "criteria": criteria}


def criterion_key(criterion: dict) -> str:
    return f"{criterion['name']}[{criterion['class']}]" if criterion["class"] else criterion["name"]


def agreement(first: dict, second: dict) -> dict:
    """Which criteria the two runs judged alike and which not (a criterion either run lacks counts as not alike)."""
    keys = sorted(set(first["criteria"]) | set(second["criteria"]))
    outcome = {k: (first["criteria"].get(k, {}).get("outcome"), second["criteria"].get(k, {}).get("outcome")) for k in keys}
    return {"same_outcomes": all(a == b for a, b in outcome.values()),
            "differ": {k: list(pair) for k, pair in outcome.items() if pair[0] != pair[1]}}


def grid_arguments(args) -> list[str]:
    return [f"--utility-sizes={args.sizes}", f"--utility-ratios={args.ratios}", f"--utility-seeds={args.seeds}"]


def compare(release: str, args) -> dict:
    runs = {}
    plans = {"probe, policy grid": [], "probe": ["--utility-mode=probe", *grid_arguments(args)],
             "finetune": ["--utility-mode=finetune", *grid_arguments(args)]}
    for label, extra in plans.items():
        with tempfile.TemporaryDirectory() as folder:
            log(f"{release}: {label} ...")
            runs[label] = gate_utility(release, args.cache, args.policy, extra, Path(folder))
            log(f"{release}: {label}: {runs[label]['wall_s']} s, "
                + ", ".join(f"{k} {v['outcome']}" for k, v in runs[label]["criteria"].items()))
    return {"runs": runs, "probe_vs_finetune": agreement(runs["probe"], runs["finetune"]),
            "policy_grid_vs_finetune": agreement(runs["probe, policy grid"], runs["finetune"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--releases", required=True, help="comma-separated release names or folders")
    parser.add_argument("--cache", type=Path, required=True, help="synthgate cache (the reference model is trained there if absent)")
    parser.add_argument("--policy", help="gate policy for every run (default: the gate's own choice per release)")
    parser.add_argument("--sizes", default="1.0", help="real-data fractions of the shared grid (default 1.0)")
    parser.add_argument("--ratios", default="1.0", help="synthetic:real ratios of the shared grid (default 1.0)")
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the shared grid (default 0,1,2)")
    parser.add_argument("--threads", type=int, help="torch and BLAS threads in the gate runs")
    parser.add_argument("--out", help="result file name in bench/results/ (default protocols-cpu.json)")
    args = parser.parse_args()
    set_threads(args.threads)
    run = Run("protocols")
    args.cache = args.cache.resolve()
    results = {release: compare(release, args) for release in args.releases.split(",")}
    parameters = {k: str(v) for k, v in vars(args).items()}
    run.save(args.out, parameters, results, notes=[
        "finetune: the whole DenseNet121 from the leakage-free weights, the policy's epochs, on the device the gate "
        "chooses (cuda when present); probe: linear heads on that model's frozen features",
        "each run gates only quality_checks/test_utility.py; grids given on the command line never clear a release"])


if __name__ == "__main__":
    main()
