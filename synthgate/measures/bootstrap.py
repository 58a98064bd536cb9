"""The bootstrap engine behind ``metrics``: resampling patients (clusters) or images.

Images of one patient are not independent (same anatomy, same scanner, often
the same label), so an interval that resamples images treats ``m`` images of a
patient as ``m`` independent observations and comes out too narrow. Where
patient ids are known the bootstrap draws whole patients with replacement; an
image whose patient is unknown (``Collection.groups`` holds ``image:<path>``)
is its own cluster, so without patient ids this is the ordinary image
bootstrap.

A replicate is a row of *multiplicities* (how often each image was drawn), not
a list of indices: a patient drawn twice counts all its images twice, and
replicates of different sizes still fit one ``(n_boot, n)`` array. Every metric
is then a weighted count, and AUROC the weighted Mann-Whitney statistic over a
single sort of the scores, so each block of replicates costs a few matrix
products and one cumulative sum, with no per-replicate sort.

Stratification keeps the resampling by cluster: clusters are split into those
with only negative images, only positive images, and both, and each stratum is
resampled on its own with its own size. Every replicate then holds both classes
(AUROC is always defined), and with one image per cluster this is exactly the
usual class-stratified bootstrap. Unstratified replicates that lack a class
leave AUROC undefined; they are dropped from its interval and counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

METRICS = ("accuracy", "precision", "recall", "f1", "auroc")

UNKNOWN_PATIENT = "image:"  # Collection.groups prefix of an image whose patient is unknown

# Cap on elements per replicate block (~32 MiB of float64) so large test sets
# do not need n_boot x n temporaries for every intermediate at once.
_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval, and what the interval rests on.

    ``n`` images (of both sets, for a difference of two sets) in ``clusters``
    resampling units; ``resampled`` says whether the bootstrap drew whole
    ``"patients"`` or single ``"images"``. ``positives`` and ``negatives`` count
    the evaluated images of each class (for a difference of two sets, the
    smaller set's count) so that a gate can refuse numbers resting on too few.
    ``seeds`` is how many training seeds the interval draws from (None: no
    training involved); ``dropped`` counts replicates where the metric was
    undefined and that were left out of the interval.
    """

    value: float
    low: float
    high: float
    n: int
    positives: int | None = None
    negatives: int | None = None
    clusters: int | None = None
    resampled: str = "images"
    seeds: int | None = None
    dropped: int = 0

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclass(frozen=True)
class Design:
    """How one set of images is resampled."""

    codes: np.ndarray  # cluster index of every image, 0 .. clusters - 1
    strata: tuple[np.ndarray, ...]  # cluster indices of each stratum; each is resampled on its own
    resampled: str  # "patients" (some patient ids known) or "images"
    positives: int
    negatives: int

    @property
    def clusters(self) -> int:
        return sum(len(s) for s in self.strata)

    @property
    def n(self) -> int:
        return len(self.codes)


def design(y: np.ndarray, groups=None, stratified: bool = True) -> Design:
    """The resampling design of labels ``y`` (bool) with optional per-image ``groups``.

    ``groups`` are patient ids (any hashable values, compared as strings); ids
    starting with ``image:`` mark images of unknown patient. Without groups,
    every image is its own cluster; so is every image of unique id, in the same
    order, so that such groups reproduce the image bootstrap draw for draw.
    """
    n = len(y)
    if groups is None:
        codes, resampled = np.arange(n), "images"
    else:
        labels = np.asarray(groups).astype(str)
        if labels.shape != (n,):
            raise ValueError(f"groups must give one id per image: {labels.shape} for {n} images")
        unique, first, codes = np.unique(labels, return_index=True, return_inverse=True)
        codes = np.argsort(np.argsort(first))[codes]  # clusters numbered by first appearance
        known = ~np.char.startswith(unique, UNKNOWN_PATIENT)
        resampled = "patients" if known.any() else "images"
    n_clusters = int(codes.max()) + 1 if n else 0
    if stratified:
        if not (y.any() and not y.all()):
            raise ValueError("stratified bootstrap needs both classes in y_true")
        positive = np.bincount(codes, weights=y, minlength=n_clusters)
        size = np.bincount(codes, minlength=n_clusters)
        kind = np.where(positive == 0, 0, np.where(positive == size, 1, 2))  # negative-only, positive-only, mixed
        strata = tuple(np.flatnonzero(kind == k) for k in range(3) if (kind == k).any())
    else:
        strata = (np.arange(n_clusters),)
    positives = int(y.sum())
    return Design(codes.ravel(), strata, resampled, positives, n - positives)


def weight_blocks(d: Design, n_boot: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Multiplicity rows, shape (rows, n) as float64, in blocks that together make ``n_boot`` rows."""
    n_clusters = d.clusters
    rows = max(1, _BLOCK_ELEMENTS // max(d.n, n_clusters, 1))
    for start in range(0, n_boot, rows):
        b = min(rows, n_boot - start)
        draws = np.concatenate([s[rng.integers(0, len(s), size=(b, len(s)))] for s in d.strata], axis=1)
        offsets = (np.arange(b) * n_clusters)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=b * n_clusters).reshape(b, n_clusters)
        yield counts[:, d.codes].astype(np.float64)


class Ranked:
    """One score vector prepared for weighted AUROC: one sort, reused for every replicate."""

    def __init__(self, y: np.ndarray, s: np.ndarray):
        self.pos = np.flatnonzero(y)
        neg = np.flatnonzero(~y)
        order = np.argsort(s[neg], kind="stable")
        self.neg_sorted = neg[order]
        sorted_scores = s[self.neg_sorted]
        # negatives strictly below, and at most equal to, each positive's score
        self.below = np.searchsorted(sorted_scores, s[self.pos], side="left")
        self.upto = np.searchsorted(sorted_scores, s[self.pos], side="right")

    def auroc(self, w: np.ndarray) -> np.ndarray:
        """Weighted AUROC of each row of multiplicities ``w``; NaN where a class has no weight.

        The Mann-Whitney statistic of the data set with image ``i`` repeated
        ``w[i]`` times, ties counted one half: equal to sklearn's AUROC on the
        expanded data.
        """
        cumulative = np.zeros((len(w), len(self.neg_sorted) + 1))
        np.cumsum(w[:, self.neg_sorted], axis=1, out=cumulative[:, 1:])
        below = cumulative[:, self.below]
        tied = cumulative[:, self.upto] - below
        u = (w[:, self.pos] * (below + 0.5 * tied)).sum(axis=1)
        pairs = w[:, self.pos].sum(axis=1) * cumulative[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pairs > 0, u / np.where(pairs > 0, pairs, 1.0), np.nan)


def weighted_metrics(y: np.ndarray, s: np.ndarray, threshold: float, w: np.ndarray,
                     ranked: Ranked | None = None) -> dict[str, np.ndarray]:
    """Every metric of ``METRICS`` for each row of multiplicities ``w`` (shape (rows, n)).

    Zero-division conventions match ``binary_metrics``: precision, recall and
    F1 are 0 when undefined, AUROC NaN.
    """
    pred = s >= threshold
    total = w.sum(axis=1)
    n_pos = w @ y.astype(np.float64)
    tp = w @ (pred & y).astype(np.float64)
    fp = w @ (pred & ~y).astype(np.float64)
    fn = n_pos - tp
    tn = total - n_pos - fp

    def ratio(num, den):
        return np.divide(num, den, out=np.zeros(len(num)), where=den > 0)

    return {
        "accuracy": (tp + tn) / total,
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, n_pos),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "auroc": (ranked or Ranked(y, s)).auroc(w),
    }


def percentile_ci(replicates: np.ndarray, ci: float) -> tuple[float, float, int]:
    """(low, high, dropped): the percentile interval of the defined replicates, and how many were not."""
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    finite = replicates[~np.isnan(replicates)]
    dropped = len(replicates) - len(finite)
    if len(finite) == 0:
        return math.nan, math.nan, dropped
    alpha = (1 - ci) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high), dropped
