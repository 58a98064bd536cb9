"""Release-level comparisons of synthetic and real images: distribution, detectability,
diversity and memorisation, each next to a real-vs-real baseline so a number can be read.

The real side is what the generator was meant to imitate: its source images when
the release points at them, else the reference images. (Judging a faithful
generator of site A against site B would measure the site shift, not the generator.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import GroupShuffleSplit

from synthgate.data.collection import Collection
from synthgate.measures.distances import (
    detectability_auroc,
    frechet_distances,
    kid,
    knn,
    prdc,
    unit_rows,
)
from synthgate.measures.metrics import Estimate, MeanStd
from synthgate.measures.similarity import CopyIndex, planted_copy_recall

RESOLUTION = 128  # default size of the distribution and privacy checks' exact pixel comparisons
WORST_PAIRS_SHOWN = 8
FEATURE_CANDIDATES = 3  # nearest neighbours in the evaluating model's features, added to the pixel search's candidates
PLANTED_SAMPLE = 50  # real images copied (each kind of copy) to measure the search's recall beside its verdict
HALVINGS = 10  # patient-wise halvings of the real images behind the Frechet ratio and its interval


class Rows:
    """Some rows of an array, read on demand (a search index keeps this instead of a copy of the rows)."""

    def __init__(self, array, rows: np.ndarray):
        self.array, self.rows = array, np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        return self.array[self.rows[key]]


def halves(collection: Collection, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint, patient-wise halves of a real collection: the real-vs-real baseline."""
    splitter = GroupShuffleSplit(n_splits=1, test_size=0.5, random_state=seed)
    first, second = next(splitter.split(np.zeros(len(collection)), groups=np.asarray(collection.groups)))
    return first, second


@dataclass
class Comparison:
    """A synthetic-vs-real number beside the same number for real-vs-real."""

    synthetic: float
    baseline: float

    @property
    def ratio(self) -> float:
        return self.synthetic / self.baseline if self.baseline > 0 else float("inf")


@dataclass
class FrechetComparison:
    """Frechet distances to real half A over several patient-wise halvings of the real images: of the synthetic
    images (as many as half B has) and of real half B, the exchangeable real-vs-real baseline."""

    synthetic_runs: np.ndarray
    baseline_runs: np.ndarray

    @property
    def synthetic(self) -> float:
        return float(np.median(self.synthetic_runs))

    @property
    def baseline(self) -> float:
        return float(np.median(self.baseline_runs))

    @property
    def ratio(self) -> float:
        return self.synthetic / self.baseline if self.baseline > 0 else float("inf")

    @property
    def ratio_interval(self) -> tuple[float, float]:
        """The ratio's 95% range over the halvings (which patients make up half A and half B)."""
        return _range(self.synthetic_runs / np.maximum(self.baseline_runs, 1e-12))

    @property
    def baseline_interval(self) -> tuple[float, float]:
        """Where a real half lands, as a multiple of the median real-vs-real distance: what a perfect stand-in's
        ratio would span."""
        return _range(self.baseline_runs / max(self.baseline, 1e-12))


def _range(values: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


@dataclass
class DistributionReport:
    target: str
    n_synthetic: int
    n_real: int
    frechet: dict[str, FrechetComparison]  # "all" (every halving) and each class (positives only, the first halving)
    kid: dict[str, tuple[MeanStd, MeanStd]]
    prdc: dict[str, Comparison]
    detectability: Estimate
    baseline_detectability: Estimate
    duplicate_fraction: Comparison
    duplicate_clusters: list[list[str]] = field(default_factory=list)


def compare_distributions(
    synthetic: Collection, synthetic_features: np.ndarray, synthetic_pixels: np.ndarray,
    real: Collection, real_features: np.ndarray, real_pixels: np.ndarray,
    target: str, duplicate_similarity: float, max_shift: int, seed: int = 0, resolution: int = RESOLUTION,
) -> DistributionReport:
    """Synthetic vs real half A, beside real half B vs real half A, at equal sample sizes.

    Near-duplicates within each set are found by the two-stage pixel search of
    ``synthgate.measures.similarity`` (compared at ``resolution`` px), each image's
    candidates including its nearest neighbours in the evaluating model's features.
    """
    first, second = halves(real, seed)
    rng = np.random.default_rng(seed)
    matched = np.sort(rng.choice(len(synthetic), size=min(len(synthetic), len(second)), replace=False))
    a, b, s = real_features[first], real_features[second], synthetic_features[matched]

    frechet = {"all": frechet_over_halvings(synthetic_features, real_features, real, seed)}
    kids = {"all": (kid(s, a, subset_size=min(len(s), len(a), 1000), seed=seed),
                    kid(b, a, subset_size=min(len(b), len(a), 1000), seed=seed))}
    for k, name in enumerate(real.classes):
        pos_a, pos_b = a[real.labels[first, k] == 1], b[real.labels[second, k] == 1]
        pos_s = synthetic_features[synthetic.labels[:, k] == 1][: len(pos_b)]
        if min(len(pos_a), len(pos_b), len(pos_s)) >= 10:
            frechet[name] = FrechetComparison(*(np.array([d]) for d in frechet_distances(pos_a, pos_s, pos_b)))
    synthetic_prdc, real_prdc = prdc(a, s), prdc(a, b)
    groups = np.asarray(real.groups)

    synthetic_similarity, partner = near_duplicates(synthetic_pixels, synthetic_features, max_shift, resolution)
    real_similarity, _ = near_duplicates(real_pixels, real_features, max_shift, resolution)
    duplicates_synthetic = synthetic_similarity >= duplicate_similarity
    return DistributionReport(
        target=target,
        n_synthetic=len(synthetic),
        n_real=len(real),
        frechet=frechet,
        kid=kids,
        prdc={key: Comparison(synthetic_prdc[key], real_prdc[key]) for key in synthetic_prdc},
        detectability=detectability_auroc(real_features, synthetic_features, groups, list(synthetic.groups), seed=seed).auroc,
        baseline_detectability=detectability_auroc(a, b, groups[first], groups[second], seed=seed).auroc,
        duplicate_fraction=Comparison(float(duplicates_synthetic.mean()), float((real_similarity >= duplicate_similarity).mean())),
        duplicate_clusters=_clusters(synthetic, duplicates_synthetic, partner),
    )


def frechet_over_halvings(synthetic_features: np.ndarray, real_features: np.ndarray, real: Collection, seed: int,
                          halvings: int = HALVINGS) -> FrechetComparison:
    """Synthetic vs real half A beside real half B vs half A, for ``halvings`` patient-wise halvings, the synthetic
    side drawn to half B's size each time: both sides are samples of one size against the same half, so a
    synthetic set drawn from the real images' distribution has a ratio near 1 (Frechet distance grows as samples
    shrink), and the spread over halvings is the ratio's interval."""
    rng = np.random.default_rng(seed)
    runs = []
    for k in range(halvings):
        first, second = halves(real, seed + k)
        n = min(len(synthetic_features), len(second))
        matched = np.sort(rng.choice(len(synthetic_features), size=n, replace=False))
        second = np.sort(rng.choice(second, size=n, replace=False))
        runs.append(frechet_distances(real_features[first], synthetic_features[matched], real_features[second]))
    synthetic_runs, baseline_runs = np.array(runs).T
    return FrechetComparison(synthetic_runs, baseline_runs)


def near_duplicates(pixels, features, max_shift: int, resolution: int = RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """Each image's most similar other image of the same set: (pixel similarity, index); -1 and itself when alone."""
    if len(pixels) < 2:
        return np.full(len(pixels), -1.0), np.arange(len(pixels))
    index = CopyIndex(pixels, max_shift, resolution)
    _, candidates = feature_neighbours(features, features, exclude_self=True)
    return index.search(pixels, extra=candidates, exclude_self=True)


def feature_neighbours(queries, references, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Each query's nearest references in the evaluating model's features: (cosine similarity of the
    nearest (n,), indices of the nearest few (n, j)), candidates for the pixel search."""
    k = min(FEATURE_CANDIDATES, len(references) - int(exclude_self))
    distance, index = knn(queries, references, k, exclude_self=exclude_self, metric="cosine")
    return 1 - distance[:, 0], index


def _clusters(collection: Collection, flagged: np.ndarray, partner: np.ndarray) -> list[list[str]]:
    """Groups of near-duplicate synthetic images (linked to their best match), largest first."""
    parent = list(range(len(flagged)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in np.flatnonzero(flagged):
        parent[root(i)] = root(int(partner[i]))
    groups: dict[int, list[str]] = {}
    for i in np.flatnonzero(flagged):
        groups.setdefault(root(i), []).append(str(collection.paths[i]))
    return sorted(groups.values(), key=len, reverse=True)


@dataclass(frozen=True)
class CopyCandidate:
    """A synthetic image and its closest real image in pixel space, with their feature-space similarity beside."""

    synthetic: str
    real: str
    similarity: float  # shift-tolerant pixel correlation: what the privacy checks judge
    feature_similarity: float  # cosine similarity of the evaluating model's features of the same two images
    real_set: str


@dataclass
class MemorisationReport:
    """Each synthetic image's closest real image, per real set searched, in pixel and in feature space."""

    threshold: float
    baseline: dict[str, float]  # real set -> max pixel similarity of held-out real images to it
    matches: dict[str, tuple[np.ndarray, np.ndarray]]  # real set -> (pixel similarity, index) per synthetic image
    feature_neighbours: dict[str, Comparison]  # real set -> median nearest-neighbour cosine, synthetic vs held-out real
    flagged: list[CopyCandidate]  # above the threshold, worst first
    worst_pairs: list[CopyCandidate]
    planted_recall: dict[str, float] = field(default_factory=dict)  # kind of copy -> share found (worst real set)
    planted_recall_by_set: dict[str, dict[str, float]] = field(default_factory=dict)
    resolution: int = RESOLUTION


def find_memorised(
    synthetic: Collection, synthetic_pixels: np.ndarray, synthetic_features: np.ndarray,
    real_sets: dict[str, tuple[Collection, np.ndarray, np.ndarray]], threshold: float, max_shift: int, seed: int = 0,
    resolution: int = RESOLUTION, planted_sample: int = PLANTED_SAMPLE,
) -> MemorisationReport:
    """Synthetic images that are near-copies (pixel similarity above ``threshold``) of real training or reference images.

    Real sets are given as (collection, pixels, features). Pixel space decides (a copy is
    a copy whatever a model thinks of it), searched in two stages (see
    ``synthgate.measures.similarity``): candidates from compact pixel embeddings and
    the evaluating model's feature neighbours, then an exact comparison at ``resolution``
    px tolerant of small shifts, scale changes up to 5%, contrast and gamma changes,
    noise and re-encoding. The baseline is the same search for held-out real images (one
    patient-wise half, at most as many images as the release has) against the other half;
    the feature-space nearest neighbours are reported beside. ``planted_recall``: the
    share of planted near-copies of ``planted_sample`` real images the same search finds,
    per kind of copy (0 skips it).
    """
    matches, baseline, neighbours, pairs, recall = {}, {}, {}, [], {}
    unit_synthetic = unit_rows(np.asarray(synthetic_features, dtype=np.float64))
    rng = np.random.default_rng(seed)
    for name, (collection, pixels, features) in real_sets.items():
        index = CopyIndex(pixels, max_shift, resolution)
        nearest, candidates = feature_neighbours(synthetic_features, features)
        similarity, match = index.search(synthetic_pixels, extra=candidates)
        matches[name] = (similarity, match)
        first, second = halves(collection, seed)
        held = np.sort(rng.choice(second, size=min(len(second), max(len(synthetic), 1)), replace=False))
        nearest_real, candidates = feature_neighbours(features[held], features[first])
        held_out, _ = CopyIndex(Rows(pixels, first), max_shift, resolution).search(Rows(pixels, held), extra=candidates)
        baseline[name] = float(held_out.max())
        neighbours[name] = Comparison(float(np.median(nearest)), float(np.median(nearest_real)))
        if planted_sample:
            recall[name] = planted_copy_recall(pixels, threshold, sample_size=planted_sample, seed=seed, index=index)
        feature_similarity = (unit_synthetic * unit_rows(np.asarray(features, dtype=np.float64))[match]).sum(1)
        pairs += [CopyCandidate(str(synthetic.paths[i]), str(collection.paths[match[i]]), float(similarity[i]),
                                float(feature_similarity[i]), name) for i in range(len(synthetic))]
    pairs.sort(key=lambda pair: pair.similarity, reverse=True)
    return MemorisationReport(
        threshold=threshold,
        baseline=baseline,
        matches=matches,
        feature_neighbours=neighbours,
        flagged=[pair for pair in pairs if pair.similarity > threshold],
        worst_pairs=pairs[:WORST_PAIRS_SHOWN],
        planted_recall={kind: min(r[kind] for r in recall.values()) for kind in next(iter(recall.values()), {})},
        planted_recall_by_set=recall,
        resolution=resolution,
    )
