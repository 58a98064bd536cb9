import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from synthgate.measures.bootstrap import design, weight_blocks
from synthgate.measures.metrics import (
    Estimate,
    MeanStd,
    binary_metrics,
    binary_metrics_rows,
    bootstrap_metrics,
    choose_threshold,
    paired_auroc_difference,
    summarise_seeds,
    unpaired_difference,
)


def _data(n, seed=0, prevalence=0.3, signal=1.0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < prevalence
    return y, rng.normal(size=n) + signal * y


def _sklearn_metrics(y, s, t):
    pred = s >= t
    return {
        "accuracy": accuracy_score(y, pred),
        "precision": precision_score(y, pred, zero_division=0),
        "recall": recall_score(y, pred, zero_division=0),
        "f1": f1_score(y, pred, zero_division=0),
        "auroc": roc_auc_score(y, s) if 0 < y.sum() < len(y) else math.nan,
    }


def _assert_same(got, want):
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=1e-12, err_msg=key)


# ----------------------------------------------------------------------------- point metrics


@pytest.mark.parametrize("seed", range(3))
def test_binary_metrics_match_sklearn(seed):
    y, s = _data(300, seed)
    _assert_same(binary_metrics(y, s, 0.4), _sklearn_metrics(y, s, 0.4))


def test_binary_metrics_one_class_gives_nan_auroc_without_error():
    s = np.linspace(0, 1, 20)
    m = binary_metrics(np.ones(20, int), s, 0.5)
    assert math.isnan(m["auroc"])
    assert m["recall"] == 0.5 and m["precision"] == 1.0
    assert math.isnan(binary_metrics(np.zeros(20, int), s, 0.5)["auroc"])


def test_binary_metrics_no_predicted_positives_gives_zero_precision():
    y, s = _data(50)
    assert binary_metrics(y, s, threshold=1e9)["precision"] == 0.0


@pytest.mark.parametrize("bad", [np.array([0, 1, 2]), np.array([0.0, 0.5, 1.0])])
def test_non_binary_labels_rejected(bad):
    with pytest.raises(ValueError, match="binary"):
        binary_metrics(bad, np.zeros(3), 0.5)


def test_nan_scores_rejected():
    with pytest.raises(ValueError, match="NaN"):
        binary_metrics([0, 1], [0.1, np.nan], 0.5)


def test_rows_match_sklearn_with_ties_and_one_class_rows():
    rng = np.random.default_rng(1)
    y = rng.random((40, 60)) < 0.4
    s = rng.integers(0, 5, size=(40, 60)).astype(float)  # many ties
    y[0] = True
    y[1] = False
    rows = binary_metrics_rows(y, s, 2.0)
    for r in range(len(y)):
        _assert_same({m: rows[m][r] for m in rows}, _sklearn_metrics(y[r], s[r], 2.0))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(-3, 3)), min_size=1, max_size=30))
def test_rows_property_matches_binary_metrics(pairs):
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs], dtype=float)
    rows = binary_metrics_rows(y[None], s[None], 0.0)
    _assert_same({m: rows[m][0] for m in rows}, binary_metrics(y, s, 0.0))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_auroc_of_separating_scores_is_one_and_inverted_is_zero(n_pos, n_neg, seed):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)])
    s = np.where(y == 1, 1 + rng.random(len(y)), rng.random(len(y)))
    assert binary_metrics(y, s, 0.5)["auroc"] == 1.0
    assert binary_metrics(y, -s, 0.5)["auroc"] == 0.0
    est = bootstrap_metrics(y, s, 1.0, n_boot=20, seed=seed)
    assert (est["auroc"].low, est["auroc"].high) == (1.0, 1.0)
    assert est["accuracy"].value == 1.0


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 30), st.booleans())
def test_one_class_input_is_nan_in_rows_and_an_error_for_stratified_bootstrap(n, label):
    y = np.full(n, label)
    s = np.arange(n, dtype=float)
    assert math.isnan(binary_metrics_rows(y[None], s[None], 0.5)["auroc"][0])
    with pytest.raises(ValueError, match="both classes"):
        bootstrap_metrics(y, s, 0.5, n_boot=10)


# ----------------------------------------------------------------------------- thresholds


def test_youden_threshold_maximises_j_by_brute_force():
    y, s = _data(200, seed=3)

    def j(t):
        pred = s >= t
        return pred[y].mean() - pred[~y].mean()

    best = max(j(t) for t in np.unique(s))
    assert j(choose_threshold(y, s, "youden")) == pytest.approx(best)


def test_f1_threshold_maximises_f1_by_brute_force():
    y, s = _data(200, seed=4)
    best = max(f1_score(y, s >= t) for t in np.unique(s))
    assert f1_score(y, s >= choose_threshold(y, s, "f1")) == pytest.approx(best)


def test_threshold_separates_perfect_scores():
    y = np.r_[np.zeros(5, int), np.ones(5, int)]
    s = np.r_[np.arange(5), 10 + np.arange(5)].astype(float)
    for rule in ("youden", "f1"):
        assert binary_metrics(y, s, choose_threshold(y, s, rule))["accuracy"] == 1.0


def test_threshold_errors():
    y, s = _data(50)
    with pytest.raises(ValueError, match="unknown rule"):
        choose_threshold(y, s, "magic")
    with pytest.raises(ValueError, match="both classes"):
        choose_threshold(np.ones(5), np.arange(5.0))


# ----------------------------------------------------------------------------- bootstrap


def test_estimate_str():
    assert str(Estimate(0.9123, 0.8741, 0.9449, 100)) == "0.912 [0.874, 0.945]"
    assert str(MeanStd(0.91234, 0.01234)) == "0.9123 ± 0.012"
    assert str(MeanStd(0.00123, 0.00045)) == "0.00123 ± 0.00045"


def test_bootstrap_point_values_and_ci_contain_estimate():
    y, s = _data(400, seed=5)
    est = bootstrap_metrics(y, s, 0.5, n_boot=500, seed=1)
    point = binary_metrics(y, s, 0.5)
    for m, e in est.items():
        assert e.value == point[m]
        assert e.low <= e.value <= e.high, m
        assert e.n == 400


def test_bootstrap_is_deterministic_given_seed():
    y, s = _data(300, seed=6)
    assert bootstrap_metrics(y, s, 0.5, n_boot=200, seed=7) == bootstrap_metrics(y, s, 0.5, n_boot=200, seed=7)
    assert bootstrap_metrics(y, s, 0.5, n_boot=200, seed=7) != bootstrap_metrics(y, s, 0.5, n_boot=200, seed=8)


def test_ci_narrows_with_n():
    widths = []
    for n in (100, 1000, 10000):
        e = bootstrap_metrics(*_data(n, seed=n), 0.5, n_boot=300)["auroc"]
        widths.append(e.high - e.low)
    assert widths[0] > widths[1] > widths[2]
    assert 6 < widths[0] / widths[2] < 16  # ~ 1/sqrt(n): 10x from 100x the samples


def test_wider_ci_level_gives_wider_interval():
    y, s = _data(300, seed=9)
    e90 = bootstrap_metrics(y, s, 0.5, n_boot=400, ci=0.9)["auroc"]
    e99 = bootstrap_metrics(y, s, 0.5, n_boot=400, ci=0.99)["auroc"]
    assert e99.low < e90.low and e99.high > e90.high
    with pytest.raises(ValueError, match="ci"):
        bootstrap_metrics(y, s, 0.5, ci=95)


def test_stratified_resampling_keeps_class_counts():
    y = np.zeros(50, bool)
    y[[3, 17]] = True
    (w,) = weight_blocks(design(y), 100, np.random.default_rng(0))
    assert w.shape == (100, 50)
    assert (w @ y == 2).all() and (w.sum(axis=1) == 50).all()


def test_rare_positives_bootstrap_is_finite_stratified_and_nan_tolerant_unstratified():
    y, s = _data(100, seed=10, prevalence=0.0)
    y[:2] = True  # two positives: unstratified replicates often have none
    for stratified in (True, False):
        e = bootstrap_metrics(y, s, 0.5, n_boot=300, stratified=stratified)["auroc"]
        assert np.isfinite([e.low, e.high]).all()


def test_bootstrap_1000_by_1000_is_fast():
    y, s = _data(1000, seed=11)
    bootstrap_metrics(y, s, 0.5, n_boot=50)  # warm-up imports
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        bootstrap_metrics(y, s, 0.5, n_boot=1000)
        best = min(best, time.perf_counter() - start)
    assert best < 1.0


# ----------------------------------------------------------------------------- differences


def test_paired_difference_of_identical_scores_is_exactly_zero():
    y, s = _data(300, seed=12)
    d = paired_auroc_difference(y, s, s.copy(), n_boot=200)
    assert (d.value, d.low, d.high, d.n) == (0.0, 0.0, 0.0, 300)


def test_paired_difference_detects_better_model_and_is_tighter_than_unpaired():
    rng = np.random.default_rng(13)
    y, s_a = _data(600, seed=13, signal=1.0)
    s_b = s_a + 0.8 * y + 0.3 * rng.normal(size=600)  # same images, strictly more signal
    paired = paired_auroc_difference(y, s_a, s_b, n_boot=500, seed=1)
    unpaired = unpaired_difference(y, s_a, y, s_b, n_boot=500, seed=1)
    expected = roc_auc_score(y, s_b) - roc_auc_score(y, s_a)
    assert paired.value == pytest.approx(expected) == unpaired.value
    assert 0 < paired.low <= paired.value <= paired.high
    assert paired.high - paired.low < 0.6 * (unpaired.high - unpaired.low)


def test_paired_difference_sign_is_b_minus_a_and_deterministic():
    y, s = _data(200, seed=14)
    rng = np.random.default_rng(0)
    noisy = s + rng.normal(size=200)
    d1 = paired_auroc_difference(y, s, noisy, n_boot=200, seed=3)
    assert d1.value < 0
    assert d1 == paired_auroc_difference(y, s, noisy, n_boot=200, seed=3)
    d2 = paired_auroc_difference(y, noisy, s, n_boot=200, seed=3)
    assert (d2.value, d2.low, d2.high) == pytest.approx((-d1.value, -d1.high, -d1.low))


def test_unpaired_difference_for_sets_of_different_size():
    y_real, s_real = _data(500, seed=15, signal=1.5)
    y_syn, s_syn = _data(300, seed=16, signal=0.5)
    d = unpaired_difference(y_real, s_real, y_syn, s_syn, n_boot=400, seed=2)
    assert d.value == pytest.approx(roc_auc_score(y_syn, s_syn) - roc_auc_score(y_real, s_real))
    assert d.high < 0 and d.n == 800
    assert d == unpaired_difference(y_real, s_real, y_syn, s_syn, n_boot=400, seed=2)


def test_unpaired_difference_threshold_metrics_and_validation():
    y, s = _data(300, seed=17)
    same = unpaired_difference(y, s, y, s, metric="f1", n_boot=300)
    assert same.value == 0.0 and same.low < 0 < same.high
    d = unpaired_difference(y, s, y, s, metric="recall", threshold=(0.5, 0.0), n_boot=100)
    assert d.value == pytest.approx(binary_metrics(y, s, 0.0)["recall"] - binary_metrics(y, s, 0.5)["recall"])
    with pytest.raises(ValueError, match="unknown metric"):
        unpaired_difference(y, s, y, s, metric="auc")


# ----------------------------------------------------------------------------- seeds


def test_summarise_seeds():
    mean, std = summarise_seeds([0.90, 0.92, 0.94])
    assert mean == pytest.approx(0.92) and std == pytest.approx(0.02)
    one = summarise_seeds([0.9])
    assert one.mean == 0.9 and math.isnan(one.std)
    with pytest.raises(ValueError):
        summarise_seeds([])
