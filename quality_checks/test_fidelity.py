"""Fidelity: the leakage-free model scores the synthetic images like real ones.

Parametrised by class: only classes with a threshold in release.toml's
[criteria] are gated; the others are reported in the tables, not judged.
"""

import pytest

from synthgate.gate.verdicts import expect_criterion, measure

pytestmark = pytest.mark.fidelity


@pytest.mark.gate_criterion("pretrained_auroc")
def test_pretrained_auroc(evaluated_release, criterion):
    expect_criterion(criterion, *measure(evaluated_release, criterion))


@pytest.mark.gate_criterion("pretrained_accuracy")
def test_pretrained_accuracy(evaluated_release, criterion):
    expect_criterion(criterion, *measure(evaluated_release, criterion))


@pytest.mark.gate_criterion("pretrained_precision")
def test_pretrained_precision(evaluated_release, criterion):
    expect_criterion(criterion, *measure(evaluated_release, criterion))


@pytest.mark.gate_criterion("pretrained_recall")
def test_pretrained_recall(evaluated_release, criterion):
    expect_criterion(criterion, *measure(evaluated_release, criterion))


@pytest.mark.gate_criterion("synthetic_minus_real_auroc")
def test_synthetic_minus_real_auroc(evaluated_release, criterion):
    expect_criterion(criterion, *measure(evaluated_release, criterion))
