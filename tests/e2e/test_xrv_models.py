"""The gate with torchxrayvision's published weights: the leakage table decides before
any metric, and a weights file placed by hand is loaded (never downloaded)."""

from __future__ import annotations

import pytest
import torch

from synthgate.demo.world import build_world
from synthgate.models.compat import import_xrv
from synthgate.models.weights import weights_filename
from tests.conftest import HANDMADE_TOML, write_handmade_release, write_policy


def release_with_model(root, world, source: str, model: str):
    release = write_handmade_release(root)
    toml = HANDMADE_TOML.replace('source_datasets = ["phantom-site-a"]', f'source_datasets = ["{source}"]')
    (release / "release.toml").write_text(
        toml
        + f'\n[model]\nxrv = "{model}"\n'
        + f'\n[reference.train]\npath = "{world}/reference/train"\ndatasets = ["phantom-site-b"]\n'
        + f'\n[reference.test]\npath = "{world}/reference/test"\ndatasets = ["phantom-site-b"]\n'
    )
    return release


XRV_POLICY = """\
[policy]
min_positives = 3
min_negatives = 3
# Published weights list their data sets, not their images; these releases give no source images.
accept_missing = ["model_image_list", "source_images"]

[criteria."*"]
pretrained_auroc = 0.5
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return f"--policy={write_policy(tmp_path_factory.mktemp('policy') / 'xrv-policy.toml', XRV_POLICY)}"


@pytest.fixture(scope="module")
def world(gate_cache):
    return build_world(gate_cache)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """A weights file in torchxrayvision's own format (a whole pickled module), made here."""
    folder = tmp_path_factory.mktemp("xrv-weights")
    torch.manual_seed(0)
    model = import_xrv().models.DenseNet(num_classes=18, in_channels=1)
    torch.save(model, folder / weights_filename("nih"))
    return folder


def test_all_weights_are_refused_for_a_padchest_release(run_gate, tmp_path, world, policy):
    release = release_with_model(tmp_path / "r", world, "padchest", "all")
    result = run_gate(str(release), policy, "-m", "leakage or fidelity")
    assert result.returncode == 1
    assert result.failed_checks() == {"model_never_saw_generator_source"}
    assert "padchest" in result.output and "torchxrayvision:all" in result.output
    assert "rests on data-set names" in result.output
    fidelity = [c for c in result.summary["criteria"] if c["family"] == "fidelity"]
    assert fidelity and all(c["outcome"] == "skipped" for c in fidelity)


def test_nih_weights_pass_leakage_for_a_padchest_release_and_load(run_gate, tmp_path, world, weights_dir, policy):
    release = release_with_model(tmp_path / "r", world, "padchest", "nih")
    result = run_gate(str(release), policy, "-m", "leakage", f"--weights-dir={weights_dir}")
    assert result.returncode == 0, result.output
    assert {c["outcome"] for c in result.summary["criteria"]} == {"passed"}
    notes = " ".join(c["note"] or "" for c in result.summary["criteria"])
    assert "accepted by the gate policy" in notes and "rests on data-set names" in notes


def test_published_weights_block_image_level_checks_unless_the_policy_accepts_it(run_gate, tmp_path, world):
    release = release_with_model(tmp_path / "r", world, "padchest", "nih")
    strict = write_policy(tmp_path / "strict.toml", XRV_POLICY.replace('"model_image_list", ', ""))
    result = run_gate(str(release), f"--policy={strict}", "-m", "leakage")
    assert result.returncode == 1
    assert "model_saw_no_source_images" in result.failed_checks() or "release_holds_no_model_training_images" in result.failed_checks()
    assert "does not accept the list of images the evaluating model saw" in result.output


def test_nih_weights_are_refused_for_a_ranzcr_release(run_gate, tmp_path, world, policy):
    release = release_with_model(tmp_path / "r", world, "ranzcr-clip", "nih")
    result = run_gate(str(release), policy, "-m", "leakage")
    assert result.failed_checks() == {"model_never_saw_generator_source"}
    assert "nih-chestxray14" in result.output


def test_missing_weights_file_says_which_file_to_put_where(run_gate, tmp_path, world, policy):
    release = release_with_model(tmp_path / "r", world, "padchest", "nih")
    empty = tmp_path / "no-weights"
    empty.mkdir()
    result = run_gate(str(release), policy, "-m", "fidelity", f"--weights-dir={empty}")
    assert result.returncode == 1
    assert weights_filename("nih") in result.output and str(empty) in result.output
    assert "Traceback" not in result.output
