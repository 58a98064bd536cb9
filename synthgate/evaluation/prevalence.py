"""Predicted prevalence: how often the evaluating model calls each finding in synthetic vs real images.

A release from an unconditional generator has no labels, so what can be judged of its
content is what the evaluating model sees in it: per declared class, the share of
synthetic images the model calls positive (score at or above a decision threshold: chosen
on the generator's source images when those are compared with, else on real validation
images as for the fidelity metrics; never on test), beside the same share on real images, with a bootstrap interval of the difference. Each set is
resampled on its own, by patient where patients are known and by image otherwise. A
generator that has lost a finding (it never draws an enlarged heart) shows a synthetic
share near the model's false-positive rate against the real one. For a labelled release
the share of images labelled positive is kept beside it.

The real images compared with are those the generator was meant to imitate, as for the
other distribution checks: its source images when the release gives them, else the
reference test images (``comparison_set``). A model's calls shift with the site an image
comes from, so judging a faithful generator of one site against another site's images
would measure the site shift; the share on the reference test images is reported beside.

The gate judges the absolute difference (``absolute``): the interval of the signed
difference folded at zero, so a difference in either direction counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from synthgate.measures.bootstrap import design, percentile_ci, weight_blocks
from synthgate.measures.metrics import Estimate, choose_threshold

REFERENCE_TEST = "real reference test images"
SOURCE_IMAGES = "generator source images"


@dataclass(frozen=True)
class ClassPrevalence:
    """One class: the shares of real and synthetic images called positive, and their difference."""

    threshold: float | None
    real: Estimate | None = None  # share of the real images compared with (``real_set``) called positive
    synthetic: Estimate | None = None  # share of synthetic images called positive
    difference: Estimate | None = None  # synthetic minus real
    real_set: str = REFERENCE_TEST
    reference_test: Estimate | None = None  # share of reference test images called positive, when not ``real``
    declared: float | None = None  # share of synthetic images labelled positive (labelled releases only)
    declared_positives: int | None = None
    problem: str = ""


def _share(called: np.ndarray, groups, n_boot: int, rng: np.random.Generator, ci: float) -> tuple[Estimate, np.ndarray]:
    """The share of ``called`` images with its bootstrap replicates (clusters resampled, unstratified)."""
    d = design(called, groups, stratified=False)
    replicates = np.concatenate([w @ called / w.sum(axis=1) for w in weight_blocks(d, n_boot, rng)])
    low, high, _ = percentile_ci(replicates, ci)
    return Estimate(float(called.mean()), low, high, n=d.n, clusters=d.clusters, resampled=d.resampled), replicates


def share_difference(real_called, synthetic_called, real_groups=None, synthetic_groups=None, n_boot: int = 1000,
                     seed: int = 0, ci: float = 0.95) -> tuple[Estimate, Estimate, Estimate]:
    """(real share, synthetic share, synthetic minus real) of images called positive, with percentile intervals.

    ``*_called`` are 0/1 (or bool) per image; ``*_groups`` patient ids per image (``image:...``
    where unknown, or None: every image its own cluster). The two sets are resampled
    independently, from independent child seeds of ``seed``.
    """
    real_called = np.asarray(real_called, dtype=np.float64)
    synthetic_called = np.asarray(synthetic_called, dtype=np.float64)
    if len(real_called) == 0 or len(synthetic_called) == 0:
        raise ValueError("a predicted prevalence needs at least one real and one synthetic image")
    rng_real, rng_synthetic = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    real, real_replicates = _share(real_called, real_groups, n_boot, rng_real, ci)
    synthetic, synthetic_replicates = _share(synthetic_called, synthetic_groups, n_boot, rng_synthetic, ci)
    low, high, dropped = percentile_ci(synthetic_replicates - real_replicates, ci)
    resampled = "patients" if "patients" in (real.resampled, synthetic.resampled) else "images"
    difference = Estimate(synthetic.value - real.value, low, high, n=real.n + synthetic.n,
                          clusters=(real.clusters or 0) + (synthetic.clusters or 0), resampled=resampled, dropped=dropped)
    return real, synthetic, difference


def absolute(difference: Estimate) -> tuple[float, float, float]:
    """|difference| and its interval: the signed interval folded at zero (it reaches 0 when it spans 0)."""
    low, high = abs(difference.low), abs(difference.high)
    if math.isnan(difference.low) or math.isnan(difference.high):
        return abs(difference.value), math.nan, math.nan
    spans_zero = difference.low <= 0 <= difference.high
    return abs(difference.value), 0.0 if spans_zero else min(low, high), max(low, high)


def class_prevalence(validation_labels, validation_scores, real_scores, synthetic_scores, real_groups=None,
                     synthetic_groups=None, synthetic_labels=None, n_boot: int = 1000, seed: int = 0,
                     real_set: str = REFERENCE_TEST, test_scores=None, test_groups=None) -> ClassPrevalence:
    """One class from the model's scores: threshold on validation, shares called positive on real and synthetic.

    ``real_*`` are the images compared with (named ``real_set``); ``test_*`` the reference test
    images when those are not the ones compared with (their share is reported beside).
    ``synthetic_labels`` (0/1 per image) only in a labelled release: the declared share kept beside.
    """
    declared = positives = None
    if synthetic_labels is not None and len(synthetic_labels):
        positives = int(np.sum(synthetic_labels))
        declared = positives / len(synthetic_labels)
    kept = {"real_set": real_set, "declared": declared, "declared_positives": positives}
    y = np.asarray(validation_labels)
    if not (y.any() and not y.all()):
        return ClassPrevalence(None, problem="the images the threshold is chosen on hold only one class: no "
                                             "threshold can be chosen", **kept)
    if len(real_scores) == 0 or len(synthetic_scores) == 0:
        return ClassPrevalence(None, problem=f"no {real_set} or no synthetic image to score", **kept)
    threshold = choose_threshold(y, validation_scores)
    real, synthetic, difference = share_difference(
        np.asarray(real_scores) >= threshold, np.asarray(synthetic_scores) >= threshold, real_groups, synthetic_groups,
        n_boot=n_boot, seed=seed,
    )
    reference_test = None
    if test_scores is not None and len(test_scores):
        called = (np.asarray(test_scores) >= threshold).astype(np.float64)
        reference_test = _share(called, test_groups, n_boot, np.random.default_rng(seed), 0.95)[0]
    return ClassPrevalence(threshold, real, synthetic, difference, reference_test=reference_test, **kept)


def comparison_set(evaluation) -> tuple[str, object]:
    """The real images synthetic shares are compared with: the generator's source images if given, else reference test."""
    if evaluation.source_images is not None:
        return SOURCE_IMAGES, evaluation.source_images
    return REFERENCE_TEST, evaluation.reference_test


def predicted_prevalence(evaluation) -> dict[str, ClassPrevalence]:
    """Every declared class of a release evaluation (``ReleaseEvaluation``), in the release's order.

    The threshold is chosen on the generator's source images when they are what is compared with (they are
    labelled): a threshold set on another site's images can call nearly every image of the generator's site
    positive, and a share near 1 on both sides hides a lost finding. Else on the real validation images.
    """
    index = evaluation.class_outputs()
    splits = evaluation.splits
    real_set, real = comparison_set(evaluation)
    validation = real if real_set == SOURCE_IMAGES else splits["validation"]
    sets = {"validation": validation, "real": real, "synthetic": splits["synthetic"], "test": splits["test"]}
    # read once per collection: the source images are also the threshold's set, the reference test also "real"
    by_collection = {id(c): evaluation.embeddings(c).scores for c in sets.values()}
    scores = {name: by_collection[id(collection)] for name, collection in sets.items()}
    synthetic, test = sets["synthetic"], sets["test"]
    stats = evaluation.release.statistics
    beside = real_set != REFERENCE_TEST
    return {
        name: class_prevalence(
            sets["validation"].column(name), scores["validation"][:, k], scores["real"][:, k],
            scores["synthetic"][:, k], np.asarray(real.groups), np.asarray(synthetic.groups),
            synthetic.column(name) if synthetic.labelled else None, n_boot=stats.n_boot, seed=stats.seed,
            real_set=real_set, test_scores=scores["test"][:, k] if beside else None,
            test_groups=np.asarray(test.groups) if beside else None,
        )
        for name, k in index.items()
    }
