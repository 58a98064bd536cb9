"""Leakage: the evaluating model never saw the generator's data, and the real
reference data is a clean train/test split that the release does not contain.

These run before any metric: a model that fails here is never used to score.
"""

import pytest

from synthgate.gate.verdicts import expect_no_offences
from synthgate.plugin import skip_unless_configured

pytestmark = pytest.mark.leakage


@pytest.fixture(scope="module")
def leakage(release_evaluation):
    skip_unless_configured(release_evaluation)
    return release_evaluation.leakage


def test_model_never_saw_generator_source(leakage):
    expect_no_offences(leakage["model"], "training data sets shared by the model and the generator")


def test_reference_splits_share_no_patients(leakage):
    expect_no_offences(leakage["split_patients"], "patients in both reference train and test")


def test_reference_splits_share_no_images(leakage):
    expect_no_offences(leakage["split_images"], "images in both reference train and test")


def test_release_holds_no_reference_test_images(leakage):
    expect_no_offences(leakage["release_test_images"], "release images that are reference test images")
