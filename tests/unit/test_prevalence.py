"""Predicted prevalence: the shares of images the model calls positive, their difference and its interval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synthgate.evaluation.prevalence import absolute, class_prevalence, share_difference
from synthgate.gate.measurements import predicted_prevalence
from synthgate.measures.metrics import Estimate, choose_threshold


def test_the_shares_are_the_fractions_called_positive_and_the_difference_is_synthetic_minus_real():
    real = np.r_[np.ones(30), np.zeros(70)]
    synthetic = np.r_[np.ones(10), np.zeros(40)]
    r, s, d = share_difference(real, synthetic, n_boot=500)
    assert (r.value, s.value) == (0.3, 0.2) and d.value == pytest.approx(-0.1)
    for estimate in (r, s, d):
        assert estimate.low <= estimate.value <= estimate.high
    assert r.n == 100 and s.n == 50 and d.n == 150
    assert r.positives is None and d.positives is None  # shares of model calls, not label counts: nothing to refuse


def test_the_interval_resamples_patients_where_they_are_known():
    real = np.r_[np.ones(40), np.zeros(60)]
    patients = np.repeat([f"p{k}" for k in range(25)], 4)  # four images each, whole patients positive or negative
    by_patient, by_image, _ = share_difference(real, real, patients, None, n_boot=2000, seed=1)
    assert by_patient.resampled == "patients" and by_patient.clusters == 25
    _, synthetic, difference = share_difference(real, real, None, [f"image:{k}" for k in range(100)], n_boot=2000)
    assert synthetic.resampled == "images" and synthetic.clusters == 100
    assert difference.resampled == "images"
    # clustered data: resampling whole patients gives the wider (honest) interval
    plain, _, _ = share_difference(real, real, None, None, n_boot=2000, seed=1)
    assert by_patient.high - by_patient.low > plain.high - plain.low


def test_identical_sets_differ_by_zero_and_the_interval_spans_zero():
    called = (np.arange(200) % 4 == 0).astype(float)
    _, _, difference = share_difference(called, called.copy(), n_boot=1000)
    assert difference.value == 0 and difference.low < 0 < difference.high


def test_the_same_seed_gives_the_same_interval():
    rng = np.random.default_rng(3)
    real, synthetic = rng.random(120) < 0.3, rng.random(80) < 0.25
    assert share_difference(real, synthetic, seed=7) == share_difference(real, synthetic, seed=7)


def test_an_empty_set_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        share_difference(np.ones(5), np.zeros(0))


@pytest.mark.parametrize("signed, folded", [
    ((-0.20, -0.28, -0.12), (0.20, 0.12, 0.28)),
    ((0.05, -0.02, 0.11), (0.05, 0.0, 0.11)),
    ((0.15, 0.10, 0.20), (0.15, 0.10, 0.20)),
])
def test_the_absolute_difference_folds_the_interval_at_zero(signed, folded):
    value, low, high = signed
    assert absolute(Estimate(value, low, high, n=10)) == pytest.approx(folded)


def test_an_undefined_interval_stays_undefined():
    value, low, high = absolute(Estimate(-0.1, math.nan, math.nan, n=10))
    assert value == pytest.approx(0.1) and math.isnan(low) and math.isnan(high)


def _scores(rng, labels, separation=2.5):
    return 1 / (1 + np.exp(-(rng.normal(size=len(labels)) + separation * (labels - 0.5))))


def test_a_generator_that_lost_a_finding_shows_a_share_near_the_false_positive_rate():
    rng = np.random.default_rng(0)
    y_val, y_test = (rng.random(400) < 0.3).astype(int), (rng.random(300) < 0.3).astype(int)
    faithful, lost = (rng.random(300) < 0.3).astype(int), np.zeros(300, int)
    s_val, s_test = _scores(rng, y_val), _scores(rng, y_test)
    good = class_prevalence(y_val, s_val, s_test, _scores(rng, faithful), n_boot=500)
    bad = class_prevalence(y_val, s_val, s_test, _scores(rng, lost), n_boot=500)
    assert good.threshold == bad.threshold == choose_threshold(y_val, s_val)
    assert good.real.value == pytest.approx(np.mean(s_test >= good.threshold))
    assert absolute(good.difference)[1] < 0.05  # faithful: the folded interval reaches (near) zero
    assert absolute(bad.difference)[1] > 0.1  # lost finding: far from zero even at the interval's near end
    assert bad.synthetic.value < bad.real.value
    assert good.declared is None and good.declared_positives is None


def test_a_labelled_release_keeps_its_declared_share_beside():
    rng = np.random.default_rng(1)
    y_val, y_test, y_syn = (rng.random(200) < 0.3).astype(int), (rng.random(100) < 0.3).astype(int), np.r_[np.ones(20), np.zeros(60)]
    result = class_prevalence(y_val, _scores(rng, y_val), _scores(rng, y_test), _scores(rng, y_syn),
                              synthetic_labels=y_syn, n_boot=200)
    assert result.declared == 0.25 and result.declared_positives == 20


def test_validation_with_one_class_is_a_problem_not_a_crash():
    rng = np.random.default_rng(2)
    result = class_prevalence(np.zeros(50), rng.random(50), rng.random(40), rng.random(30), n_boot=100)
    assert result.threshold is None and "only one class" in result.problem


class _Evaluation:
    """Just enough of a ReleaseEvaluation for the measurement."""

    def __init__(self, result):
        self.release = type("R", (), {"class_names": ("cardiomegaly",)})()
        self.prevalence = {"cardiomegaly": result}


def test_the_criterion_judges_the_absolute_difference_with_the_shares_beside():
    rng = np.random.default_rng(0)
    y_val, y_test = (rng.random(400) < 0.3).astype(int), (rng.random(300) < 0.3).astype(int)
    result = class_prevalence(y_val, _scores(rng, y_val), _scores(rng, y_test), _scores(rng, np.zeros(300, int)),
                              n_boot=500)
    measured = predicted_prevalence(_Evaluation(result), "cardiomegaly")
    assert measured.value == pytest.approx(abs(result.difference.value))
    assert (measured.low, measured.high) == pytest.approx(absolute(result.difference)[1:])
    assert measured.positives is None and measured.baseline == result.real.value
    assert "called positive" in measured.baseline_text
    assert [row["set"] for row in measured.rows] == ["synthetic", "real reference test images"]
    assert "threshold" in measured.note
    missing = predicted_prevalence(_Evaluation(result), "effusion")
    assert "no class 'effusion'" in missing.problem


def test_the_reference_test_share_is_reported_beside_when_other_real_images_are_compared():
    rng = np.random.default_rng(4)
    y_val = (rng.random(300) < 0.3).astype(int)
    source, test, synthetic = (_scores(rng, (rng.random(n) < 0.3).astype(int)) for n in (200, 150, 250))
    result = class_prevalence(y_val, _scores(rng, y_val), source, synthetic, n_boot=300, real_set="generator source images",
                              test_scores=test, test_groups=[f"p{k // 2}" for k in range(150)])
    assert result.real_set == "generator source images" and result.real.n == 200
    assert result.reference_test.value == pytest.approx(np.mean(test >= result.threshold))
    assert result.reference_test.resampled == "patients" and result.reference_test.clusters == 75
    assert class_prevalence(y_val, _scores(rng, y_val), test, synthetic, n_boot=100).reference_test is None
    measured = predicted_prevalence(_Evaluation(result), "cardiomegaly")
    assert [row["set"] for row in measured.rows] == ["synthetic", "generator source images", "real reference test images"]
    assert "vs generator source images" in measured.baseline_text and "real reference test" in measured.baseline_text


def test_the_report_rows_say_unlabelled_instead_of_a_label_count():
    from synthgate.reporting.prevalence import prevalence_view

    share = {"value": 0.2, "ci_low": 0.1, "ci_high": 0.3}
    entry = {"threshold": 0.5, "real": share, "synthetic": share, "difference": {**share, "value": 0.0},
             "reference_test": None, "declared": None, "declared_positives": None, "real_set": "generator source images"}
    unlabelled = prevalence_view({"effusion": entry}, ["effusion", "mass"], labelled=False)
    assert unlabelled["real_set"] == "generator source images" and not unlabelled["reference_test_beside"]
    (row,) = unlabelled["rows"]
    assert row["declared"] == "unlabelled" and row["synthetic"] == "0.200 [0.100, 0.300]"
    labelled = prevalence_view({"effusion": {**entry, "declared": 0.25, "declared_positives": 50}}, ["effusion"], True)
    assert labelled["rows"][0]["declared"] == "0.250 (50 images)"
