"""Leakage: the evaluating model never saw the generator's data, and the real
reference data is a clean train/test split that the release does not contain.

These run before any metric: a model that fails here is never used to score.
"""

import pytest

from synthgate.gate import expect_no_offences

pytestmark = pytest.mark.leakage


def test_model_never_saw_generator_source(release_evaluation):
    expect_no_offences(release_evaluation.leakage["model"], "training data sets shared by the model and the generator")


def test_reference_splits_share_no_patients(release_evaluation):
    expect_no_offences(release_evaluation.leakage["split_patients"], "patients in both reference train and test")


def test_reference_splits_share_no_images(release_evaluation):
    expect_no_offences(release_evaluation.leakage["split_images"], "images in both reference train and test")


def test_release_holds_no_reference_test_images(release_evaluation):
    expect_no_offences(release_evaluation.leakage["release_test_images"], "release images that are reference test images")
