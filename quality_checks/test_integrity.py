"""Integrity: the release's files, manifest and labels are sound.

Each test is one gate criterion; a failure names the first offending files and
the total, and the report attaches the full table.
"""

import pytest

from synthgate.gate.verdicts import expect_no_offences

pytestmark = pytest.mark.integrity


@pytest.fixture(scope="module")
def problems(release_evaluation):
    return release_evaluation.integrity.problems


def test_paths_stay_inside_release(problems):
    expect_no_offences(problems["paths"], "manifest paths point outside the release folder")


def test_manifest_and_files_match(problems):
    expect_no_offences(problems["manifest_files"], "mismatches between manifest rows and files")


def test_images_decode(problems):
    expect_no_offences(problems["decode"], "images do not decode")


def test_image_size(problems):
    expect_no_offences(problems["size"], "images have the wrong size")


def test_image_mode_and_bit_depth(problems):
    expect_no_offences(problems["mode"], "images have the wrong mode or bit depth")


def test_no_blank_images(problems):
    expect_no_offences(problems["blank"], "images are blank or constant")


def test_no_exact_duplicates(problems):
    expect_no_offences(problems["exact_duplicates"], "images are exact duplicates")


def test_labels_in_vocabulary(problems):
    expect_no_offences(problems["labels"], "label problems")


def test_class_minimum_counts(problems):
    expect_no_offences(problems["class_counts"], "classes below their declared minimum count")


def test_no_text_metadata(problems):
    expect_no_offences(problems["metadata"], "images carry embedded text or metadata")
