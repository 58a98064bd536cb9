"""Time of the gate's evaluation on the demo release, cold and with the feature cache warm.

Why: the promise is that in probe mode the whole retraining grid on the demo runs
in under a minute on 2 CPU cores once features are cached, and that a second run
of an unchanged release costs seconds and runs no image through the network.
This opens the demo release the way the pytest plugin does, pays the one-off costs
first (building the demo, training its reference DenseNet, extracting features:
reported separately as "first run"), then times each stage of the gate on fresh
``ReleaseEvaluation`` objects that can only get features from the disk cache, and
finally times a real ``pytest quality_checks --release=demo`` subprocess.

    .venv/bin/python bench/experiments.py                       # temp cache, trains the model first
    .venv/bin/python bench/experiments.py --cache ~/.cache/synthgate --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import REPO, Run, cpu_seconds, log, set_threads

from synthgate.catalog import default_search_path, resolve
from synthgate.config.release import load_release
from synthgate.demo.world import build_world
from synthgate.evaluation.release_evaluation import GateOptions, ReleaseEvaluation

# In the order a gate session needs them; each is a cached property of ReleaseEvaluation.
STAGES = ("integrity", "leakage", "model", "pretrained", "utility", "distribution", "privacy")


def open_evaluation(cache: Path) -> ReleaseEvaluation:
    """The demo release, resolved and loaded as ``synthgate.plugin`` does."""
    folder = resolve("demo", default_search_path(REPO, []), cache)
    return ReleaseEvaluation(load_release(folder), GateOptions(cache_dir=cache))


def stopwatch(fn, cpu: dict | None = None, key: str = "") -> tuple[float, object]:
    """Wall seconds of ``fn()`` and its value; with ``cpu``, also its CPU seconds under ``cpu[key]``."""
    start, start_cpu = time.perf_counter(), cpu_seconds()
    value = fn()
    if cpu is not None:
        cpu[key] = cpu_seconds() - start_cpu
    return time.perf_counter() - start, value


def feature_shards(cache: Path) -> int:
    return len(list((cache / "features").rglob("*.npz")))


def first_run(cache: Path) -> dict:
    """One-off costs: demo build, reference-model training, feature extraction of every split."""
    out = {"models_cached_before": (cache / "models").is_dir() and any((cache / "models").iterdir())}
    cpu = out["cpu_s"] = {}
    out["demo_build_s"], _ = stopwatch(lambda: build_world(cache), cpu, "demo_build")
    evaluation = open_evaluation(cache)
    out["model_training_s"], _ = stopwatch(lambda: evaluation.model, cpu, "model_training")
    out["checkpoint"] = str(next((cache / "models").rglob("*.pt"), ""))
    splits = evaluation.splits
    out["split_sizes"] = {name: len(c) for name, c in splits.items()}
    out["feature_extraction_s"], _ = stopwatch(lambda: [evaluation.embeddings(c) for c in splits.values()],
                                            cpu, "feature_extraction")
    # distribution and privacy compare with the generator's source images, which are not a split
    target_name, target = evaluation.realism_target
    out["realism_target"] = {"name": target_name, "images": len(target)}
    out["target_extraction_s"], _ = stopwatch(lambda: evaluation.embeddings(target), cpu, "target_extraction")
    out["forward_passes"] = evaluation.extractor.forward_passes
    out["device"], out["precision"] = str(evaluation.device), evaluation.extractor.precision
    return out


def warm_run(cache: Path) -> dict:
    """Every stage of the gate on a fresh evaluation: features may only come from the disk cache."""
    evaluation = open_evaluation(cache)
    stages, cpu, passes = {}, {}, {}
    for stage in STAGES:
        stages[stage], _ = stopwatch(lambda: getattr(evaluation, stage), cpu, stage)
        if stage == "model":
            evaluation.extractor  # noqa: B018  (built once the model is loaded)
        passes[stage] = evaluation.extractor.forward_passes if "extractor" in evaluation.__dict__ else 0
        log(f"  {stage}: {stages[stage]:.2f} s wall, {cpu[stage]:.2f} s CPU")
    grid = evaluation.utility
    return {"stages_s": stages, "stages_cpu_s": cpu, "total_s": sum(stages.values()), "total_cpu_s": sum(cpu.values()),
            "forward_passes_after_stage": passes,
            "forward_passes": evaluation.extractor.forward_passes,
            "grid_cells": sum(not c.unavailable for c in grid),
            "grid_head_fits": sum((2 if c.framework == "S->R" else 1) * len(evaluation.utility_spec.seeds)
                                  for c in grid if not c.unavailable)}


def summarise(runs: list[dict]) -> dict:
    def stats(values):
        return {"median_s": round(statistics.median(values), 3), "min_s": round(min(values), 3),
                "runs_s": [round(v, 3) for v in values]}

    return {"stages": {s: {**stats([r["stages_s"][s] for r in runs]),
                           "cpu_s": round(statistics.median(r["stages_cpu_s"][s] for r in runs), 3)} for s in STAGES},
            "total": {**stats([r["total_s"] for r in runs]),
                      "cpu_s": round(statistics.median(r["total_cpu_s"] for r in runs), 3)},
            "forward_passes": [r["forward_passes"] for r in runs],
            "forward_passes_after_stage": runs[-1]["forward_passes_after_stage"],
            "grid_cells": runs[-1]["grid_cells"], "grid_head_fits": runs[-1]["grid_head_fits"]}


def pytest_run(cache: Path) -> dict:
    """A real gate session, wall clock, with everything cached; new feature shards mean forward passes."""
    command = [sys.executable, "-m", "pytest", "quality_checks", "--release=demo", "-q", "-p", "no:cacheprovider",
               f"--synthgate-cache={cache}"]
    shards = feature_shards(cache)
    cpu = {}
    seconds, done = stopwatch(lambda: subprocess.run(command, cwd=REPO, capture_output=True, text=True), cpu, "run")
    lines = done.stdout.strip().splitlines()
    return {"command": " ".join(command[2:]), "wall_s": round(seconds, 2), "cpu_s": round(cpu["run"], 2),
            "exit_code": done.returncode,
            "summary": lines[-1] if lines else done.stderr[-500:],
            "new_feature_shards": feature_shards(cache) - shards}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, help="synthgate cache (default $SYNTHGATE_CACHE, else a temp dir "
                                                   "removed at the end, so the model is trained first)")
    parser.add_argument("--repeats", type=int, default=2, help="warm gate-equivalent runs (default 2)")
    parser.add_argument("--threads", type=int,
                        help="torch and BLAS threads, here and in the pytest run (1 on a shared machine)")
    parser.add_argument("--no-pytest", action="store_true", help="skip the pytest subprocess run")
    parser.add_argument("--out", default="experiments-cpu.json", help="result file name in bench/results/")
    args = parser.parse_args()
    set_threads(args.threads)  # also inherited by the pytest subprocess
    temporary = None
    cache = args.cache or (Path(os.environ["SYNTHGATE_CACHE"]) if "SYNTHGATE_CACHE" in os.environ else None)
    if cache is None:
        cache = temporary = Path(tempfile.mkdtemp(prefix="synthgate-bench-cache-"))
    run = Run("experiments")
    try:
        log(f"cache {cache}; first run (demo build, model training, feature extraction)")
        first = first_run(cache)
        log(f"  training {first['model_training_s']:.1f} s, extraction {first['feature_extraction_s']:.1f} s")
        runs = []
        for i in range(args.repeats):
            log(f"warm run {i + 1}/{args.repeats}")
            runs.append(warm_run(cache))
        results = {"first_run": first, "warm": summarise(runs)}
        if not args.no_pytest:
            log("pytest subprocess, cache warm")
            results["pytest_warm"] = pytest_run(cache)
            log(f"  {results['pytest_warm']['wall_s']} s: {results['pytest_warm']['summary']}")
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    notes = [
        "first_run: one-off costs on an empty cache (model_training_s is only a checkpoint load when "
        "models_cached_before is true).",
        "warm: fresh ReleaseEvaluation objects per run, features from the disk cache; 'utility' is the whole "
        "retraining grid (probe mode), 'model' loads the cached checkpoint.",
        "pytest_warm.new_feature_shards = 0 means the pytest session ran no image through the network.",
    ]
    parameters = {"cache": "temporary" if temporary else str(cache), "repeats": args.repeats,
                  "threads": torch.get_num_threads()}
    run.save(args.out, parameters, results, notes)


if __name__ == "__main__":
    main()
