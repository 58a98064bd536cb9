"""The study's pytest plugin: record the distribution and privacy numbers the gate computed.

Loaded into each gate run with ``-p kermany.measure_hook`` (``studies/`` on
``PYTHONPATH``, see ``gating.gate``); it does nothing unless
``$SYNTHGATE_STUDY_MEASUREMENTS`` names the file to write. The gate summary carries
the one number each check judges; the study also keeps the per-class distances, PRDC
and the real-vs-real baselines behind them. Reads what the session already computed;
computes nothing. It never changes the gate's outcome: if it cannot read what it
wants (synthgate's internals moved), it writes ``{"error": ...}`` instead, and the
study's tables leave those rows out.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

MEASUREMENTS_ENV = "SYNTHGATE_STUDY_MEASUREMENTS"
# Release-level criteria of the gate policy -> the names the study's results use for their limits.
LIMITS = {"frechet_distance_near_real_baseline": "frechet_ratio_max", "frechet_within_real_spread": "frechet_real_spreads_max",
          "not_detectable_as_synthetic": "detectability_auroc_max",
          "no_mode_collapse": "duplicate_fraction_max"}


@pytest.hookimpl(trylast=True)  # after synthgate's own plugin has written the summary
def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get(MEASUREMENTS_ENV)
    if not target:
        return
    try:
        out = measurements(session.config)
    except Exception as error:  # a study aid: never break the gate run it watches
        out = {"error": f"{type(error).__name__}: {error}"}
    Path(target).write_text(json.dumps(out, indent=2) + "\n")


def measurements(config: pytest.Config) -> dict:
    """What the gate session computed, as plain JSON values; {} when it opened no release."""
    from synthgate.plugin import session_key
    from synthgate.reporting.gather import plain

    gate = config.stash.get(session_key, None)
    if gate is None:
        return {}
    evaluation = gate.evaluation
    computed = evaluation.__dict__  # the evaluation's cached results so far
    out = {}
    if "distribution" in computed:
        d = computed["distribution"]
        limits = {LIMITS[r.criterion]: r.bound for r in gate.requirements if r.class_name is None and r.criterion in LIMITS}
        out["distribution"] = {
            "limits": limits, "target": d.target, "n_synthetic": d.n_synthetic, "n_real": d.n_real,
            "frechet": {k: {"synthetic": c.synthetic, "baseline": c.baseline, "ratio": c.ratio,
                            "real_interval": list(c.baseline_interval)} for k, c in d.frechet.items()},
            "detectability": [d.detectability.value, d.detectability.low, d.detectability.high],
            "baseline_detectability": [d.baseline_detectability.value, d.baseline_detectability.low, d.baseline_detectability.high],
            "duplicate_fraction": {"synthetic": d.duplicate_fraction.synthetic, "baseline": d.duplicate_fraction.baseline},
            "prdc": {k: {"synthetic": c.synthetic, "baseline": c.baseline} for k, c in d.prdc.items()},
        }
    if "privacy" in computed:
        p = computed["privacy"]
        out["privacy"] = {
            "threshold": p.threshold, "baseline": p.baseline,
            "max_similarity": {name: float(sim.max()) for name, (sim, _) in p.matches.items()},
            "flagged": {name: int((sim > p.threshold).sum()) for name, (sim, _) in p.matches.items()},
            "feature_neighbours": {name: dataclasses.asdict(c) for name, c in p.feature_neighbours.items()},
        }
    if "model" in computed:
        out["model_card"] = {"model_id": computed["model"].model_id,
                             "validation_metrics": computed["model"].card.validation_metrics}
    return plain(out)
