"""Gating the study's releases as CI would, one subprocess each, and keeping what the gate measured.

Every gate run is given the study's gate policy (``--policy``), and nothing that narrows
or alters the run, so each verdict is one the gate could issue for a customer's release.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from kermany.build import release_folders
from kermany.measure_hook import MEASUREMENTS_ENV
from kermany.tables import learning_curve, markdown

HERE = Path(__file__).resolve().parent
STUDIES = HERE.parent
REPO = STUDIES.parent  # the checkout the study belongs to: the gate's checks are its quality_checks/
CHECKS = "quality_checks"
HOOK = "kermany.measure_hook"  # importable from STUDIES, which each gate run gets on PYTHONPATH


def gate(release: Path, reports: Path, cache_dir: Path, policy: Path, extra: list[str] = ()) -> dict:
    """Gate one release as CI would (``python -m pytest quality_checks``) and read back what it wrote."""
    name = release.name
    summary, measurements = reports / f"{name}.json", reports / f"{name}.measurements.json"
    command = [sys.executable, "-m", "pytest", CHECKS, f"--release={release}", f"--policy={policy}", f"--gate-summary={summary}",
               f"--html={reports / name}.html", "--self-contained-html", f"--synthgate-cache={cache_dir}",
               "-q", "--durations=6", "-p", "no:cacheprovider", "-p", HOOK, *extra]
    python_path = os.pathsep.join([str(STUDIES), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, MEASUREMENTS_ENV: str(measurements), "PYTHONPATH": python_path}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    (reports / f"{name}.log").write_text(done.stdout + done.stderr)
    if not summary.exists():
        raise RuntimeError(f"the gate wrote no summary for {release} (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return {"name": name, "returncode": done.returncode, "seconds": seconds, "summary": json.loads(summary.read_text()),
            "measurements": json.loads(measurements.read_text()) if measurements.exists() else {}}


def failed_checks(summary: dict) -> list[str]:
    """Registry names of the failed criteria, without the class (``pretrained_auroc[pneumonia]`` -> ``pretrained_auroc``)."""
    return sorted({c["name"] for c in summary["criteria"] if c["outcome"] in ("failed", "error")})


def train_reference(release: Path, cache_dir: Path, policy: Path) -> dict:
    """Train (or load from the cache) the reference model exactly as the gate would, and time it.

    The release is opened the way the gate opens it (``GateSession``: the release as the
    policy measures it), so the model is the one every gate run then finds in the cache.
    """
    from synthgate.catalog import Located
    from synthgate.evaluation.release_evaluation import GateOptions
    from synthgate.gate.session import GateSession

    session = GateSession(Located(Path(release).resolve()), GateOptions(cache_dir=Path(cache_dir)), str(policy), REPO)
    evaluation = session.evaluation
    models = Path(cache_dir) / "models"
    before = set(models.glob("*/densenet121.pt")) if models.is_dir() else set()
    start = time.perf_counter()
    model = evaluation.model
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "from_cache": set(models.glob("*/densenet121.pt")) <= before,
            "model_id": model.model_id, "device": str(evaluation.device), "card": _card(model.card),
            "training_images": len(evaluation.reference_train)}


def _card(card) -> dict:
    from synthgate.reporting.gather import plain

    return plain(dataclasses.asdict(card))


def hardware() -> dict:
    import torch

    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average_at_start": list(os.getloadavg()), "python": platform.python_version(),
            "torch": torch.__version__}


def run_study(root: Path, cache_dir: Path, reports: Path, policy: Path, extra: list[str] = ()) -> dict:
    """Gate every release of a built study; write ``results.json``, ``results.md`` and the learning curve."""
    reports.mkdir(parents=True, exist_ok=True)
    folders = release_folders(root)
    facts = json.loads((root / "study.json").read_text())
    results = {"study": facts, "folder": str(root), "hardware": hardware(), "policy": str(policy), "extra_args": list(extra)}
    results["reference_model"] = train_reference(next(iter(folders.values())), cache_dir, policy)
    runs = []
    for name, folder in folders.items():
        print(f"gating {name} ...", file=sys.stderr, flush=True)
        run = gate(folder, reports, cache_dir, policy, extra)
        expect = facts["releases"][name]["expect"]
        run["expected"] = expect
        run["failed"] = failed_checks(run["summary"])
        run["as_expected"] = (run["summary"]["verdict"] == "cleared") if expect["cleared"] else (
            run["summary"]["verdict"] == "blocked" and run["failed"] == sorted(expect["blocked_by"]))
        print(f"  {run['summary']['verdict']} in {run['seconds']:.0f} s; failed: {', '.join(run['failed']) or 'none'}",
              file=sys.stderr, flush=True)
        runs.append(run)
    results["releases"] = [{k: v for k, v in run.items() if k != "summary"} | _digest(run["summary"]) for run in runs]
    (reports / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    curve = learning_curve(runs, reports / "learning-curve.png")
    (reports / "results.md").write_text(markdown(results, curve))
    return results


def _digest(summary: dict) -> dict:
    """What the study keeps of a gate summary: verdict, every criterion's numbers, the policy, the two tables."""
    keep = ("key", "name", "class", "outcome", "value", "ci_low", "ci_high", "positives", "negatives", "minimum", "maximum",
            "source", "judged_on", "judged_value", "baseline", "message")
    policy = summary.get("policy") or {}
    return {"verdict": summary["verdict"], "verdict_reasons": summary.get("verdict_reasons"),
            "criteria": [{k: c.get(k) for k in keep} for c in summary["criteria"]],
            "policy": {k: policy.get(k) for k in ("file", "sha256", "min_positives", "min_negatives", "grid")},
            "tables": summary["tables"], "model_card": summary.get("model_card")}
