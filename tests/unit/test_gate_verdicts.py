"""Criteria verdicts: thresholds move verdicts as configured, messages say why."""

from __future__ import annotations

import math

import pytest

from synthgate.gate.verdicts import GateFailure, Limit, expect_at_most, expect_criterion
from synthgate.measures.metrics import Estimate
from synthgate.config.release import Criterion

ESTIMATE = Estimate(value=0.80, low=0.72, high=0.87, n=300)


@pytest.mark.parametrize(
    "minimum, judge, passes",
    [
        (0.79, "point", True),
        (0.81, "point", False),
        (0.75, "ci_low", False),
        (0.70, "ci_low", True),
        (0.85, "ci_high", True),
        (0.90, "ci_high", False),
    ],
)
def test_threshold_and_judge_decide(minimum, judge, passes):
    criterion = Criterion("pretrained_auroc", "soft tissue mass", minimum, judge)
    if passes:
        expect_criterion(criterion, ESTIMATE)
    else:
        with pytest.raises(GateFailure) as failure:
            expect_criterion(criterion, ESTIMATE)
        message = str(failure.value)
        assert "soft tissue mass" in message and "0.800 [0.720, 0.870]" in message and f"{minimum:.3f}" in message


def test_unmeasurable_criterion_fails_with_the_reason():
    criterion = Criterion("pretrained_auroc", "effusion", 0.5, "point")
    with pytest.raises(GateFailure, match="every synthetic image is positive"):
        expect_criterion(criterion, None, "every synthetic image is positive for 'effusion': AUROC is undefined")
    with pytest.raises(GateFailure, match="undefined value"):
        expect_criterion(criterion, Estimate(math.nan, math.nan, math.nan, 10))


def test_release_level_maximum_shows_the_baseline():
    expect_at_most(Limit(0.55, 0.75), "detectability")
    with pytest.raises(GateFailure, match=r"detectability is 0\.990 \(real vs real: 0\.52\), above the allowed 0\.750"):
        expect_at_most(Limit(0.99, 0.75, 0.52), "detectability", "0.52")
