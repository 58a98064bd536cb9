"""Classification metrics with bootstrap confidence intervals.

The gate compares models trained on real and on synthetic images using the same
held-out real test images, so every headline number needs an uncertainty
estimate, and comparisons on the same images need a *paired* one.  Bootstrap
replicates are computed for all resamples at once with numpy (a rank-based
AUROC per row) because a per-replicate sklearn loop is far too slow for 1000
replicates inside a test run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

METRICS = ("accuracy", "precision", "recall", "f1", "auroc")

# Cap on elements per replicate block (~32 MiB of float64) so large test sets
# do not need n_boot x n temporaries for every intermediate at once.
_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval, computed from ``n`` samples."""

    value: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


class MeanStd(NamedTuple):
    """Mean and standard deviation; a tuple so it unpacks as ``mean, std``.

    Printed with significant digits, since KID values are often ~1e-3.
    """

    mean: float
    std: float

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.std:.2g}"


def _as_binary(y_true) -> np.ndarray:
    y = np.asarray(y_true)
    values = np.unique(y)
    if not np.isin(values, (0, 1)).all():
        raise ValueError(f"y_true must be binary 0/1 (or bool), got values {values[:10]}")
    return y.astype(bool)


def _check_pair(y_true, score) -> tuple[np.ndarray, np.ndarray]:
    y = _as_binary(y_true)
    s = np.asarray(score, dtype=np.float64)
    if y.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"y_true and score must be 1-D of equal length, got {y.shape} and {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("score contains NaN or infinite values")
    return y, s


def binary_metrics(y_true, score, threshold: float) -> dict[str, float]:
    """Accuracy, precision, recall, F1 at ``score >= threshold``, and AUROC.

    AUROC is NaN (not an exception) when ``y_true`` holds a single class, so a
    degenerate subgroup shows up in a report instead of aborting the gate.
    """
    y, s = _check_pair(y_true, score)
    pred = s >= threshold
    both_classes = y.any() and not y.all()
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "auroc": float(roc_auc_score(y, s)) if both_classes else math.nan,
    }


def choose_threshold(y_true, score, rule: str = "youden") -> float:
    """Decision threshold (for ``score >= t``) chosen on a validation set.

    ``"youden"`` maximises sensitivity + specificity - 1; ``"f1"`` maximises F1.
    Choosing it on validation data keeps the test-set metrics unbiased.
    """
    y, s = _check_pair(y_true, score)
    if not (y.any() and not y.all()):
        raise ValueError("choose_threshold needs both classes in y_true")
    if rule == "youden":
        fpr, tpr, thresholds = roc_curve(y, s)
        finite = np.isfinite(thresholds)  # drop sklearn's "predict nothing" point
        j = (tpr - fpr)[finite]
        return float(thresholds[finite][np.argmax(j)])
    if rule == "f1":
        precision, recall, thresholds = precision_recall_curve(y, s)
        precision, recall = precision[:-1], recall[:-1]  # last point has no threshold
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
        return float(thresholds[np.argmax(f1)])
    raise ValueError(f"unknown rule {rule!r}; use 'youden' or 'f1'")


def binary_metrics_rows(y_rows, score_rows, threshold: float) -> dict[str, np.ndarray]:
    """``binary_metrics`` for every row of 2-D label/score arrays at once.

    AUROC uses the Mann-Whitney rank-sum (average ranks for ties), which equals
    sklearn's trapezoidal AUROC; rows with a single class give NaN.
    """
    y = np.asarray(y_rows, dtype=bool)
    s = np.asarray(score_rows, dtype=np.float64)
    if y.ndim != 2 or y.shape != s.shape:
        raise ValueError(f"expected two 2-D arrays of equal shape, got {y.shape} and {s.shape}")
    n = y.shape[1]
    pred = s >= threshold
    tp = (pred & y).sum(axis=1)
    fp = (pred & ~y).sum(axis=1)
    n_pos = y.sum(axis=1)
    n_neg = n - n_pos
    fn = n_pos - tp
    tn = n_neg - fp

    def ratio(num, den):
        return np.divide(num, den, out=np.zeros(len(num)), where=den > 0)

    precision = ratio(tp, tp + fp)
    recall = ratio(tp, n_pos)
    ranks = rankdata(s, axis=1)
    pos_rank_sum = np.where(y, ranks, 0.0).sum(axis=1)
    pairs = n_pos * n_neg
    with np.errstate(invalid="ignore", divide="ignore"):
        auroc = np.where(pairs > 0, (pos_rank_sum - n_pos * (n_pos + 1) / 2) / pairs, np.nan)
    return {
        "accuracy": (tp + tn) / n,
        "precision": precision,
        "recall": recall,
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "auroc": auroc,
    }


def _resample_indices(y: np.ndarray, n_boot: int, rng: np.random.Generator, stratified: bool) -> np.ndarray:
    """All bootstrap index rows at once, shape (n_boot, n).

    Stratified resampling draws positives and negatives separately, so every
    replicate keeps the original class counts and AUROC is always defined.
    """
    n = len(y)
    if not stratified:
        return rng.integers(0, n, size=(n_boot, n))
    pos = np.flatnonzero(y)
    neg = np.flatnonzero(~y)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("stratified bootstrap needs both classes in y_true")
    return np.concatenate(
        [pos[rng.integers(0, len(pos), size=(n_boot, len(pos)))],
         neg[rng.integers(0, len(neg), size=(n_boot, len(neg)))]],
        axis=1,
    )


def _replicates(y: np.ndarray, s: np.ndarray, threshold: float, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics for each row of ``idx``, in row blocks to bound memory."""
    block = max(1, _BLOCK_ELEMENTS // idx.shape[1])
    parts = [binary_metrics_rows(y[idx[i:i + block]], s[idx[i:i + block]], threshold)
             for i in range(0, len(idx), block)]
    return {m: np.concatenate([p[m] for p in parts]) for m in METRICS}


def _percentile_ci(replicates: np.ndarray, ci: float) -> tuple[float, float]:
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    finite = replicates[~np.isnan(replicates)]
    if len(finite) == 0:
        return math.nan, math.nan
    alpha = (1 - ci) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high)


def bootstrap_metrics(y_true, score, threshold: float, n_boot: int = 1000, seed: int = 0,
                      stratified: bool = True, ci: float = 0.95) -> dict[str, Estimate]:
    """Point estimates and percentile bootstrap CIs for every ``binary_metrics`` key.

    Replicates where a metric is undefined (one-class AUROC, only possible
    without stratification) are left out of that metric's interval.
    """
    y, s = _check_pair(y_true, score)
    point = binary_metrics(y, s, threshold)
    idx = _resample_indices(y, n_boot, np.random.default_rng(seed), stratified)
    reps = _replicates(y, s, threshold, idx)
    return {m: Estimate(point[m], *_percentile_ci(reps[m], ci), n=len(y)) for m in METRICS}


def paired_auroc_difference(y_true, score_a, score_b, n_boot: int = 1000, seed: int = 0,
                            ci: float = 0.95) -> Estimate:
    """AUROC(b) - AUROC(a) on the same images, with a paired stratified bootstrap CI.

    Both models are scored on identical resamples, so image-level difficulty
    cancels and the interval is much tighter than two independent ones.
    """
    y, sa = _check_pair(y_true, score_a)
    _, sb = _check_pair(y_true, score_b)
    point = binary_metrics(y, sb, 0.5)["auroc"] - binary_metrics(y, sa, 0.5)["auroc"]
    idx = _resample_indices(y, n_boot, np.random.default_rng(seed), stratified=True)
    diff = _replicates(y, sb, 0.5, idx)["auroc"] - _replicates(y, sa, 0.5, idx)["auroc"]
    return Estimate(point, *_percentile_ci(diff, ci), n=len(y))


def unpaired_difference(y_a, s_a, y_b, s_b, metric: str = "auroc",
                        threshold: float | tuple[float, float] = 0.5, n_boot: int = 1000,
                        seed: int = 0, stratified: bool = True, ci: float = 0.95) -> Estimate:
    """metric(b) - metric(a) for two different sample sets, e.g. synthetic minus real.

    Each set is resampled independently (from independent child seeds), as the
    sets share no images.  ``threshold`` may be one value or an ``(a, b)`` pair;
    ``n`` of the result is the total sample count of both sets.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {METRICS}")
    t_a, t_b = threshold if isinstance(threshold, tuple) else (threshold, threshold)
    ya, sa = _check_pair(y_a, s_a)
    yb, sb = _check_pair(y_b, s_b)
    rng_a, rng_b = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    point = binary_metrics(yb, sb, t_b)[metric] - binary_metrics(ya, sa, t_a)[metric]
    rep_a = _replicates(ya, sa, t_a, _resample_indices(ya, n_boot, rng_a, stratified))[metric]
    rep_b = _replicates(yb, sb, t_b, _resample_indices(yb, n_boot, rng_b, stratified))[metric]
    return Estimate(point, *_percentile_ci(rep_b - rep_a, ci), n=len(ya) + len(yb))


def summarise_seeds(values) -> MeanStd:
    """Mean and sample standard deviation (ddof=1) of a metric over training seeds.

    The std is NaN for a single seed: one run says nothing about seed variance.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if len(v) == 0:
        raise ValueError("summarise_seeds needs at least one value")
    std = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
    return MeanStd(float(np.mean(v)), std)
