"""Classification metrics with bootstrap confidence intervals.

The gate compares models trained on real and on synthetic images using the same
held-out real test images, so every headline number needs an uncertainty
estimate, and comparisons on the same images need a *paired* one. Intervals
resample patients where patient ids are known and images otherwise, and those
of retrained models also draw a training seed per replicate; the resampling
itself (vectorised over all replicates at once, in blocks) is in ``bootstrap``.
"""

from __future__ import annotations

import math
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

from synthgate.measures.bootstrap import (
    METRICS,
    Design,
    Estimate,
    Ranked,
    design,
    percentile_ci,
    weight_blocks,
    weighted_metrics,
)

__all__ = ["METRICS", "Estimate", "MeanStd", "binary_metrics", "binary_metrics_rows", "bootstrap_metrics",
           "choose_threshold", "paired_auroc_difference", "paired_seed_difference", "seed_bootstrap_auroc",
           "summarise_seeds", "unpaired_difference"]


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


def _interval(replicates: np.ndarray, value: float, ci: float, d: Design, **extra) -> Estimate:
    low, high, dropped = percentile_ci(replicates, ci)
    return Estimate(value, low, high, n=d.n, positives=d.positives, negatives=d.negatives, clusters=d.clusters,
                    resampled=d.resampled, dropped=dropped, **extra)


def bootstrap_metrics(y_true, score, threshold: float, n_boot: int = 1000, seed: int = 0,
                      stratified: bool = True, ci: float = 0.95, *, groups=None) -> dict[str, Estimate]:
    """Point estimates and percentile bootstrap CIs for every ``binary_metrics`` key.

    With ``groups`` (a patient id per image, ``image:...`` where unknown) the
    bootstrap resamples whole patients; without, images (see ``bootstrap``).
    Replicates where a metric is undefined (one-class AUROC, only possible
    without stratification) are left out of that metric's interval and
    counted in ``Estimate.dropped``.
    """
    y, s = _check_pair(y_true, score)
    point = binary_metrics(y, s, threshold)
    d = design(y, groups, stratified)
    ranked = Ranked(y, s)
    parts = [weighted_metrics(y, s, threshold, w, ranked) for w in weight_blocks(d, n_boot, np.random.default_rng(seed))]
    return {m: _interval(np.concatenate([p[m] for p in parts]), point[m], ci, d) for m in METRICS}


def paired_auroc_difference(y_true, score_a, score_b, n_boot: int = 1000, seed: int = 0,
                            ci: float = 0.95, *, groups=None) -> Estimate:
    """AUROC(b) - AUROC(a) on the same images, with a paired stratified bootstrap CI.

    Both models are scored on identical resamples (of patients where
    ``groups`` are given), so image-level difficulty cancels and the interval
    is much tighter than two independent ones.
    """
    y, sa = _check_pair(y_true, score_a)
    _, sb = _check_pair(y_true, score_b)
    point = binary_metrics(y, sb, 0.5)["auroc"] - binary_metrics(y, sa, 0.5)["auroc"]
    d = design(y, groups, stratified=True)
    ra, rb = Ranked(y, sa), Ranked(y, sb)
    diff = np.concatenate([rb.auroc(w) - ra.auroc(w) for w in weight_blocks(d, n_boot, np.random.default_rng(seed))])
    return _interval(diff, point, ci, d)


def unpaired_difference(y_a, s_a, y_b, s_b, metric: str = "auroc",
                        threshold: float | tuple[float, float] = 0.5, n_boot: int = 1000,
                        seed: int = 0, stratified: bool = True, ci: float = 0.95, *,
                        groups_a=None, groups_b=None) -> Estimate:
    """metric(b) - metric(a) for two different sample sets, e.g. synthetic minus real.

    Each set is resampled independently (from independent child seeds), as the
    sets share no images, each by patient where its groups name patients.
    ``threshold`` may be one value or an ``(a, b)`` pair. ``n`` and
    ``clusters`` of the result are totals over both sets; ``positives`` and
    ``negatives`` the smaller of the two sets' counts (what the difference
    rests on least); ``resampled`` is "patients" if either set was.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {METRICS}")
    t_a, t_b = threshold if isinstance(threshold, tuple) else (threshold, threshold)
    ya, sa = _check_pair(y_a, s_a)
    yb, sb = _check_pair(y_b, s_b)
    rng_a, rng_b = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    point = binary_metrics(yb, sb, t_b)[metric] - binary_metrics(ya, sa, t_a)[metric]
    da, db = design(ya, groups_a, stratified), design(yb, groups_b, stratified)

    def replicates(y, s, t, d, rng):
        ranked = Ranked(y, s)
        return np.concatenate([weighted_metrics(y, s, t, w, ranked)[metric] for w in weight_blocks(d, n_boot, rng)])

    diff = replicates(yb, sb, t_b, db, rng_b) - replicates(ya, sa, t_a, da, rng_a)
    low, high, dropped = percentile_ci(diff, ci)
    resampled = "patients" if "patients" in (da.resampled, db.resampled) else "images"
    return Estimate(point, low, high, n=da.n + db.n, positives=min(da.positives, db.positives),
                    negatives=min(da.negatives, db.negatives), clusters=da.clusters + db.clusters,
                    resampled=resampled, dropped=dropped)


# --------------------------------------------------------------------------- over training seeds


def _seed_rows(y: np.ndarray, rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    rows = rows[None] if rows.ndim == 1 else rows
    if rows.ndim != 2 or rows.shape[1] != len(y) or len(rows) == 0:
        raise ValueError(f"expected scores of shape (seeds, {len(y)}), got {rows.shape}")
    for row in rows:
        _check_pair(y, row)
    return rows


def _seed_aurocs(y: np.ndarray, rows: np.ndarray, d: Design, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(point AUROC per seed, shape (seeds,); replicate AUROC per seed, shape (seeds, n_boot))."""
    ranked = [Ranked(y, row) for row in rows]
    reps = np.concatenate([np.stack([r.auroc(w) for r in ranked]) for w in weight_blocks(d, n_boot, np.random.default_rng(seed))],
                          axis=1)
    return np.array([roc_auc_score(y, row) for row in rows]), reps


def _seed_draws(n_seeds: int, n_boot: int, seed: int, stream: int) -> np.ndarray:
    """Which training seed each replicate uses: independent of the test resampling stream."""
    return np.random.default_rng([seed, 0x5EED, stream]).integers(0, n_seeds, size=n_boot)


def seed_bootstrap_auroc(y_true, score_rows, n_boot: int = 1000, seed: int = 0, ci: float = 0.95,
                         *, groups=None) -> Estimate:
    """AUROC of one model trained with a random seed, over test images *and* training seeds.

    ``score_rows`` holds the test scores of each seed's model, shape (seeds, n).
    The point estimate is the mean over seeds of each model's AUROC (the
    expected AUROC of one training run). The interval is a two-level
    bootstrap: every replicate resamples the test set (stratified, by patient
    where ``groups`` name patients) and picks one training seed at random, so
    its spread adds the between-seed spread to the test-set sampling error.
    That makes it an interval for a single training run of the recipe, the
    model anyone using the release would get; it is conservative for the mean
    over seeds (whose seed variance is 1/seeds of it), which with the few seeds
    a gate affords cannot be bootstrapped reliably (resampling 3 seeds gives 10
    distinct sets). With one seed, or seeds that agree exactly, it is the
    test-only interval (the same test resamples are drawn).
    """
    y = _as_binary(y_true)
    rows = _seed_rows(y, score_rows)
    d = design(y, groups, stratified=True)
    points, reps = _seed_aurocs(y, rows, d, n_boot, seed)
    pick = _seed_draws(len(rows), n_boot, seed, 0)
    return _interval(reps[pick, np.arange(n_boot)], float(points.mean()), ci, d, seeds=len(rows))


def paired_seed_difference(y_true, rows_a, rows_b, n_boot: int = 1000, seed: int = 0, ci: float = 0.95,
                           *, groups=None) -> Estimate:
    """Mean-over-seeds AUROC(b) - AUROC(a) on the same test images, over test images and training seeds.

    As ``seed_bootstrap_auroc``, for two training recipes scored on the same
    test set: each replicate resamples the test set once for both (paired) and
    picks a seed of ``a`` and, independently, one of ``b`` (different recipes
    share no training run, so their seeds are not paired).
    """
    y = _as_binary(y_true)
    rows_a, rows_b = _seed_rows(y, rows_a), _seed_rows(y, rows_b)
    d = design(y, groups, stratified=True)
    points_a, reps_a = _seed_aurocs(y, rows_a, d, n_boot, seed)
    points_b, reps_b = _seed_aurocs(y, rows_b, d, n_boot, seed)
    columns = np.arange(n_boot)
    diff = reps_b[_seed_draws(len(rows_b), n_boot, seed, 2), columns] - reps_a[_seed_draws(len(rows_a), n_boot, seed, 1), columns]
    return _interval(diff, float(points_b.mean() - points_a.mean()), ci, d, seeds=min(len(rows_a), len(rows_b)))


def summarise_seeds(values) -> MeanStd:
    """Mean and sample standard deviation (ddof=1) of a metric over training seeds.

    The std is NaN for a single seed: one run says nothing about seed variance.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if len(v) == 0:
        raise ValueError("summarise_seeds needs at least one value")
    std = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
    return MeanStd(float(np.mean(v)), std)
