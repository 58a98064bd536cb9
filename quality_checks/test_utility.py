"""Utility: training on synthetic data works, and adding it does not hurt.

Every model here is tested on the real reference test set. Parametrised by
class; only classes with a threshold in release.toml's [criteria] are gated.
"""

import pytest

from synthgate.gate.verdicts import expect_criterion, measure

pytestmark = [pytest.mark.utility, pytest.mark.slow]


@pytest.mark.gate_criterion("train_on_synthetic_auroc")
def test_train_on_synthetic_auroc(evaluated_release, criterion):
    expect_criterion(criterion, *measure(evaluated_release, criterion))


@pytest.mark.gate_criterion("mix_minus_real_auroc")
def test_mix_not_worse_than_real(evaluated_release, criterion):
    expect_criterion(criterion, *measure(evaluated_release, criterion))


@pytest.mark.gate_criterion("pretrain_minus_real_auroc")
def test_synthetic_pretraining_not_worse_than_real(evaluated_release, criterion):
    expect_criterion(criterion, *measure(evaluated_release, criterion))
