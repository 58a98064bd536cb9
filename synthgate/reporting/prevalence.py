"""The report's predicted-prevalence block: gathered as plain data, then formatted for the template.

Per class: the share of synthetic images and of real test images the evaluating model
calls positive at the threshold chosen on the generator's source images (else on real
validation images), the difference with its
interval, the share labelled positive where the release is labelled, and the score
histograms (real test vs synthetic) the figure is drawn from. Nothing here computes a
statistic; :mod:`synthgate.evaluation.prevalence` does.
"""

from __future__ import annotations

import numpy as np

HISTOGRAM_BINS = 25  # equal-width bins of the model's score in [0, 1]


def _estimate(e) -> dict | None:
    return None if e is None else {"value": e.value, "ci_low": e.low, "ci_high": e.high, "n": e.n,
                                   "resampled": e.resampled}


def gather_prevalence(evaluation) -> dict:
    """Plain data per class: shares, difference, declared share, and score histograms (never the raw scores)."""
    from synthgate.evaluation.prevalence import comparison_set

    splits = evaluation.splits
    index = evaluation.class_outputs()
    real_set, real = comparison_set(evaluation)
    sets = {"real": real, "synthetic": splits["synthetic"], "real test": splits["test"]}
    scores = {which: evaluation.embeddings(collection).scores for which, collection in sets.items()}
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    gathered = {}
    for name, result in evaluation.prevalence.items():
        k = index[name]
        shown = ("real", "synthetic") if result.reference_test is None else ("real", "synthetic", "real test")
        gathered[name] = {
            "threshold": result.threshold, "problem": result.problem, "real_set": result.real_set,
            "real": _estimate(result.real), "synthetic": _estimate(result.synthetic),
            "difference": _estimate(result.difference), "reference_test": _estimate(result.reference_test),
            "declared": result.declared, "declared_positives": result.declared_positives,
            "histogram": {"edges": edges.tolist(),
                          **{which: np.histogram(np.clip(scores[which][:, k], 0, 1), edges)[0].tolist()
                             for which in shown}},
        }
    return gathered


def called_positive(evaluation, name: str) -> list:
    """Paths of the synthetic images the model calls positive for ``name`` (samples of an unlabelled release)."""
    result = evaluation.prevalence[name]
    if result.threshold is None:
        return []
    synthetic = evaluation.splits["synthetic"]
    scores = evaluation.embeddings(synthetic).scores[:, evaluation.class_outputs()[name]]
    return [synthetic.paths[i] for i in np.flatnonzero(scores >= result.threshold)]


def _share(e: dict | None) -> str:
    if not e or e.get("value") is None:
        return "–"
    ci = f" [{e['ci_low']:.3f}, {e['ci_high']:.3f}]" if e.get("ci_low") is not None else ""
    return f"{e['value']:.3f}{ci}"


def prevalence_view(prevalence: dict | None, classes: list[str], labelled: bool) -> dict:
    """The table for the template: which real images were compared, and one row per class."""
    rows, real_set, beside = [], "", False
    for name in [c for c in classes if c in (prevalence or {})]:
        entry = prevalence[name]
        real_set = entry.get("real_set") or real_set
        beside = beside or entry.get("reference_test") is not None
        declared = "unlabelled" if not labelled else (
            f"{entry['declared']:.3f} ({entry['declared_positives']} images)" if entry.get("declared") is not None else "–")
        rows.append({"class": name, "problem": entry.get("problem") or "",
                     "threshold": "–" if entry.get("threshold") is None else f"{entry['threshold']:.3f}",
                     "real": _share(entry.get("real")), "synthetic": _share(entry.get("synthetic")),
                     "difference": _share(entry.get("difference")), "reference_test": _share(entry.get("reference_test")),
                     "declared": declared})
    return {"rows": rows, "real_set": real_set, "reference_test_beside": beside}
