"""Judging: bounds and judges move verdicts as configured, messages say why, and the verdict
compares what was required with what passed."""

from __future__ import annotations

import math

import pytest

from synthgate.gate.measurements import Measurement
from synthgate.gate.policy import Requirement
from synthgate.gate.verdicts import GateFailure, judge, verdict
from synthgate.measures.metrics import Estimate

ESTIMATE = Estimate(value=0.80, low=0.72, high=0.87, n=300)


def _judge(requirement, measured, minimum=30):
    judge(requirement, measured, minimum, minimum)


@pytest.mark.parametrize(
    "minimum, judged_on, passes",
    [
        (0.79, "point", True),
        (0.81, "point", False),
        (0.75, "ci_low", False),
        (0.70, "ci_low", True),
        (0.85, "ci_high", True),
        (0.90, "ci_high", False),
    ],
)
def test_bound_and_judge_decide_an_at_least_criterion(minimum, judged_on, passes):
    requirement = Requirement("pretrained_auroc", "soft tissue mass", minimum, judged_on, "policy")
    if passes:
        _judge(requirement, Measurement.of(ESTIMATE))
        return
    with pytest.raises(GateFailure) as failure:
        _judge(requirement, Measurement.of(ESTIMATE))
    message = str(failure.value)
    assert "soft tissue mass" in message and "0.800 [0.720, 0.870]" in message and f"{minimum:.3f}" in message
    assert "set by the policy" in message


@pytest.mark.parametrize("judged_on, passes", [("point", True), ("ci_high", False), ("ci_low", True)])
def test_the_strict_bound_of_an_at_most_criterion_is_the_upper_one(judged_on, passes):
    requirement = Requirement("not_detectable_as_synthetic", None, 0.85, judged_on, "policy")
    measured = Measurement.of(ESTIMATE, baseline_text="real vs real: 0.52")
    if passes:
        _judge(requirement, measured)
    else:
        with pytest.raises(GateFailure, match=r"0\.870 is above the allowed maximum 0\.850.*real vs real: 0\.52|real vs real"):
            _judge(requirement, measured)


def test_an_unmeasurable_or_undefined_number_fails_with_the_reason():
    requirement = Requirement("pretrained_auroc", "effusion", 0.5, "point", "policy")
    with pytest.raises(GateFailure, match="every synthetic image is positive"):
        _judge(requirement, Measurement.missing("every synthetic image is positive for 'effusion': AUROC is undefined"))
    with pytest.raises(GateFailure, match="undefined"):
        _judge(requirement, Measurement.of(Estimate(math.nan, math.nan, math.nan, 10)))


def test_a_number_on_too_few_positives_cannot_pass():
    requirement = Requirement("pretrained_auroc", "effusion", 0.5, "point", "policy")
    few = Estimate(0.99, 0.98, 1.0, 40, positives=7, negatives=33)
    with pytest.raises(GateFailure, match="rests on 7 positives; the gate policy needs at least 30"):
        _judge(requirement, Measurement.of(few))
    _judge(requirement, Measurement.of(few), minimum=5)


def test_offence_checks_name_the_files():
    requirement = Requirement("images_decode", None, 0.0, "point", "fixed")
    rows = [{"file": f"images/{k}.png", "problem": "truncated"} for k in range(7)]
    with pytest.raises(GateFailure) as failure:
        _judge(requirement, Measurement(value=7.0, rows=rows))
    assert "7 images do not decode" in str(failure.value) and "images/0.png: truncated" in str(failure.value)
    assert "and 2 more" in str(failure.value)
    _judge(requirement, Measurement(value=0.0))


def test_verdict_compares_what_was_required_with_what_passed():
    required = ["images_decode", "pretrained_auroc[mass]"]
    assert verdict(required, {"images_decode": ["passed"], "pretrained_auroc[mass]": ["passed"]}, [])[0] == "cleared"
    assert verdict(required, {"images_decode": ["passed"], "pretrained_auroc[mass]": ["failed"]}, [])[0] == "blocked"
    outcome, reasons = verdict(required, {"images_decode": ["passed"]}, [])
    assert outcome == "incomplete" and "pretrained_auroc[mass]" in reasons[0]
    both = {"images_decode": ["passed"], "pretrained_auroc[mass]": ["passed", "skipped"]}
    assert verdict(required, both, [])[0] == "incomplete"
    assert verdict(required, {k: ["passed"] for k in required}, ["-k 'x'"])[0] == "incomplete"
    assert verdict([], {}, [])[0] == "incomplete"
