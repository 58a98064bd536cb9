"""The report's predicted-prevalence block: gathered as plain data, then formatted for the template.

Per class: the share of synthetic images and of real test images the evaluating model
calls positive at the threshold chosen on real validation images, the difference with its
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
    splits = evaluation.splits
    index = evaluation.class_outputs()
    scores = {which: evaluation.embeddings(splits[which]).scores for which in ("test", "synthetic")}
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    gathered = {}
    for name, result in evaluation.prevalence.items():
        k = index[name]
        gathered[name] = {
            "threshold": result.threshold, "problem": result.problem,
            "real": _estimate(result.real), "synthetic": _estimate(result.synthetic),
            "difference": _estimate(result.difference),
            "declared": result.declared, "declared_positives": result.declared_positives,
            "histogram": {"edges": edges.tolist(),
                          "real test": np.histogram(np.clip(scores["test"][:, k], 0, 1), edges)[0].tolist(),
                          "synthetic": np.histogram(np.clip(scores["synthetic"][:, k], 0, 1), edges)[0].tolist()},
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


def prevalence_view(prevalence: dict | None, classes: list[str], labelled: bool) -> list[dict]:
    """One row per class for the template: threshold, shares called positive, difference, share labelled positive."""
    rows = []
    for name in [c for c in classes if c in (prevalence or {})]:
        entry = prevalence[name]
        declared = "unlabelled" if not labelled else (
            f"{entry['declared']:.3f} ({entry['declared_positives']} images)" if entry.get("declared") is not None else "–")
        rows.append({"class": name, "problem": entry.get("problem") or "",
                     "threshold": "–" if entry.get("threshold") is None else f"{entry['threshold']:.3f}",
                     "real": _share(entry.get("real")), "synthetic": _share(entry.get("synthetic")),
                     "difference": _share(entry.get("difference")), "declared": declared})
    return rows
