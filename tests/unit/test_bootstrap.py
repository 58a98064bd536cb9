"""Honest intervals: resampling patients, counting what a number rests on, and training-seed variation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from synthgate.measures.bootstrap import design, weight_blocks, weighted_metrics
from synthgate.measures.metrics import (
    binary_metrics,
    binary_metrics_rows,
    bootstrap_metrics,
    paired_auroc_difference,
    paired_seed_difference,
    seed_bootstrap_auroc,
    unpaired_difference,
)

PATIENTS, IMAGES = 30, 5  # per class; images per patient


def _clustered(rng, datasets: int, signal: float = 0.8, image_noise: float = 0.35):
    """Datasets of PATIENTS positive and PATIENTS negative patients with IMAGES strongly correlated images each.

    The label is the patient's and most of the score's variance is the
    patient's own (intra-class correlation ~0.9), as with repeated studies.
    """
    y = np.repeat(np.r_[np.ones(PATIENTS, bool), np.zeros(PATIENTS, bool)], IMAGES)
    patient = rng.normal(size=(datasets, 2 * PATIENTS))
    scores = signal * y + np.repeat(patient, IMAGES, axis=1) + image_noise * rng.normal(size=(datasets, len(y)))
    return y, scores, np.repeat([f"p{k}" for k in range(2 * PATIENTS)], IMAGES)


# ----------------------------------------------------------------------------- resampling patients


def test_patient_bootstrap_matches_the_true_sampling_spread_and_the_image_bootstrap_is_too_narrow():
    """Known answer by simulation: the spread of AUROC over many independently drawn data sets."""
    rng = np.random.default_rng(0)
    y, scores, groups = _clustered(rng, 4000)
    auroc = binary_metrics_rows(np.broadcast_to(y, scores.shape), scores, 0.0)["auroc"]
    true_width = float(np.subtract(*np.quantile(auroc, [0.975, 0.025])))
    truth = float(auroc.mean())  # pos and neg patients are independent, so AUROC is unbiased for P(s+ > s-)

    patients, images = [], []
    for k in range(40):
        patients.append(bootstrap_metrics(y, scores[k], 0.0, n_boot=400, seed=k, groups=groups)["auroc"])
        images.append(bootstrap_metrics(y, scores[k], 0.0, n_boot=400, seed=k)["auroc"])

    def width(estimates):
        return float(np.mean([e.high - e.low for e in estimates])) / true_width

    def coverage(estimates):
        return float(np.mean([e.low <= truth <= e.high for e in estimates]))

    assert 0.85 < width(patients) < 1.15  # (G-1)/G shrinkage of the bootstrap: ~0.97 expected
    assert width(images) < 0.6  # ~1/sqrt(design effect) ~0.46: far too narrow
    assert coverage(patients) >= 0.8 > coverage(images) + 0.1
    assert all(e.resampled == "patients" and e.clusters == 2 * PATIENTS and e.n == len(y) for e in patients)
    assert all(e.resampled == "images" and e.clusters == len(y) for e in images)


def test_unknown_patients_are_resampled_as_images_draw_for_draw():
    rng = np.random.default_rng(1)
    y, s = rng.random(120) < 0.3, rng.normal(size=120)
    unknown = [f"image:{k}.png" for k in range(120)]
    assert bootstrap_metrics(y, s, 0.0, n_boot=200, groups=unknown) == bootstrap_metrics(y, s, 0.0, n_boot=200)
    partly = ["p1", "p1", *unknown[2:]]  # one known patient is enough to say patients were resampled
    estimate = bootstrap_metrics(y, s, 0.0, n_boot=50, groups=partly)["auroc"]
    assert (estimate.resampled, estimate.clusters) == ("patients", 119)


def test_strata_keep_the_count_of_each_kind_of_patient_and_both_classes_in_every_replicate():
    y = np.array([1, 1, 0, 0, 0, 1, 0, 0, 1, 0], bool)
    groups = np.array(["a", "a", "b", "b", "c", "d", "d", "e", "f", "g"])  # a, f: positive; d: mixed
    d = design(y, groups)
    assert sorted(len(s) for s in d.strata) == [1, 2, 4]
    (w,) = weight_blocks(d, 500, np.random.default_rng(0))
    per_patient = {g: w[:, groups == g][:, 0] for g in "abcdefg"}
    assert (per_patient["a"] + per_patient["f"] == 2).all() and (per_patient["d"] == 1).all()
    assert ((w @ y) > 0).all() and ((w @ ~y) > 0).all()
    for row in w[:5]:  # whole patients: every image of a patient is drawn equally often
        assert all(len(set(row[groups == g])) == 1 for g in "abcdefg")


def test_unstratified_replicates_without_a_class_are_dropped_and_counted():
    y = np.zeros(60, bool)
    y[:3] = True  # one positive patient of twenty
    s = np.arange(60.0)
    groups = np.repeat(np.arange(20), 3)
    auroc = bootstrap_metrics(y, s, 0.5, n_boot=400, stratified=False, groups=groups)["auroc"]
    assert 0 < auroc.dropped < 400 and np.isfinite([auroc.low, auroc.high]).all()
    assert bootstrap_metrics(y, s, 0.5, n_boot=400, groups=groups)["auroc"].dropped == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(-3, 3), st.integers(0, 3)), min_size=1, max_size=25))
def test_weighted_metrics_equal_the_metrics_of_the_expanded_data(rows):
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows], dtype=float)
    w = np.array([r[2] for r in rows], dtype=float)
    if w.sum() == 0:
        w[0] = 1
    got = weighted_metrics(y, s, 0.0, w[None])
    expanded = np.repeat(np.arange(len(y)), w.astype(int))
    want = binary_metrics(y[expanded], s[expanded], 0.0)
    for metric, value in want.items():
        assert (math.isnan(value) and math.isnan(got[metric][0])) or got[metric][0] == pytest.approx(value, abs=1e-12)


def test_groups_must_align_with_images():
    with pytest.raises(ValueError, match="one id per image"):
        bootstrap_metrics([0, 1, 0], [0.1, 0.9, 0.2], 0.5, groups=["a", "b"])


# ----------------------------------------------------------------------------- counts


def test_every_estimate_carries_its_class_counts():
    rng = np.random.default_rng(2)
    y, scores, groups = _clustered(rng, 2)
    for estimate in bootstrap_metrics(y, scores[0], 0.0, n_boot=50, groups=groups).values():
        assert (estimate.positives, estimate.negatives, estimate.n) == (150, 150, 300)
    paired = paired_auroc_difference(y, scores[0], scores[1], n_boot=50, groups=groups)
    assert (paired.positives, paired.negatives, paired.clusters, paired.resampled) == (150, 150, 60, "patients")
    few = np.r_[np.ones(4, bool), np.zeros(40, bool)]
    unpaired = unpaired_difference(y, scores[0], few, rng.normal(size=44), n_boot=50, groups_a=groups)
    assert (unpaired.positives, unpaired.negatives, unpaired.n, unpaired.clusters) == (4, 40, 344, 104)
    assert unpaired.resampled == "patients"  # the real side was
    assert bootstrap_metrics(y, scores[0], 0.0, n_boot=10)["auroc"].seeds is None


# ----------------------------------------------------------------------------- training seeds


def _disagreeing_seeds(rng, y, signals=(0.3, 1.0, 2.0)):
    return np.stack([signal * y + rng.normal(size=len(y)) for signal in signals])


def test_seed_interval_is_wider_than_the_test_only_one_when_seeds_disagree():
    rng = np.random.default_rng(3)
    y = np.repeat(rng.random(100) < 0.4, 3)
    groups = np.repeat(np.arange(100), 3)
    rows = _disagreeing_seeds(rng, y)
    both = seed_bootstrap_auroc(y, rows, n_boot=600, seed=1, groups=groups)
    assert both.value == pytest.approx(np.mean([roc_auc_score(y, row) for row in rows]))
    assert (both.seeds, both.resampled, both.clusters) == (3, "patients", 100)
    test_only = [bootstrap_metrics(y, row, 0.5, n_boot=600, seed=1, groups=groups)["auroc"] for row in rows]
    test_only.append(bootstrap_metrics(y, rows.mean(axis=0), 0.5, n_boot=600, seed=1, groups=groups)["auroc"])
    assert all(both.high - both.low > 1.3 * (e.high - e.low) for e in test_only)
    assert both.low < min(roc_auc_score(y, row) for row in rows) < max(roc_auc_score(y, row) for row in rows) < both.high


def test_seeds_that_agree_give_exactly_the_test_only_interval():
    rng = np.random.default_rng(4)
    y, scores, groups = _clustered(rng, 1)
    test_only = bootstrap_metrics(y, scores[0], 0.0, n_boot=300, seed=5, groups=groups)["auroc"]
    for rows in (scores[0], np.stack([scores[0]] * 3)):
        same = seed_bootstrap_auroc(y, rows, n_boot=300, seed=5, groups=groups)
        assert (same.value, same.low, same.high) == pytest.approx((test_only.value, test_only.low, test_only.high))


def test_paired_seed_difference():
    rng = np.random.default_rng(5)
    y = np.repeat(rng.random(100) < 0.4, 2)
    groups = np.repeat(np.arange(100), 2)
    rows = _disagreeing_seeds(rng, y)
    same = paired_seed_difference(y, rows, rows, n_boot=400, groups=groups)
    assert same.value == pytest.approx(0.0, abs=1e-12) and same.low < 0 < same.high
    agreeing = np.stack([rows[1]] * 3)
    assert paired_seed_difference(y, agreeing, agreeing, n_boot=200).high == 0.0
    better = paired_seed_difference(y, rows, rows + 3.0 * y, n_boot=400, groups=groups)
    assert 0 < better.low and better.seeds == 3 and better.positives == int(y.sum())
    with pytest.raises(ValueError, match="shape"):
        paired_seed_difference(y, rows[:, :10], rows)
