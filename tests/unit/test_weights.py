"""synthgate.models.weights: torchxrayvision's weights table, its trained outputs, files and cards."""

from __future__ import annotations

import math

import pytest

from synthgate.models.compat import import_xrv
from synthgate.models.errors import ModelSpecError
from synthgate.models.weights import (
    XRV_TARGETS,
    XRV_WEIGHTS,
    resolve_weights_path,
    untrained_output_problem,
    weights_filename,
    xrv_card,
)


def test_table_matches_torchxrayvision_source():
    xrv = import_xrv()
    assert list(XRV_TARGETS) == list(xrv.datasets.default_pathologies)
    model_urls = xrv.models.model_urls
    densenets = {name for name, entry in model_urls.items()
                 if "-densenet121-" in entry["weights_url"] and not name.startswith("densenet121-")}
    assert densenets == set(XRV_WEIGHTS)
    for name, entry in XRV_WEIGHTS.items():
        assert entry.weights_url == model_urls[name]["weights_url"], name
        assert list(entry.outputs) == model_urls[name]["labels"], name
        assert entry.input_size == model_urls[name]["input_resolution"], name
        assert "-seed0-" in entry.weights_url, name
        assert entry.file_name.startswith("-".join(entry.datasets) + "-densenet121-"), name


def test_trained_outputs_are_the_labelled_and_calibrated_ones():
    model_urls = import_xrv().models.model_urls
    for name, entry in XRV_WEIGHTS.items():
        labels, thresholds = model_urls[name]["labels"], model_urls[name]["op_threshs"]
        calibrated = {t for t, threshold in zip(XRV_TARGETS, thresholds) if not math.isnan(threshold)}
        assert entry.trained == {label for label in labels if label} == calibrated, name


def test_mass_is_untrained_in_the_chexpert_and_mimic_weights():
    for name in ("chex", "mimic_ch", "mimic_nb", "rsna"):
        assert "Mass" not in XRV_WEIGHTS[name].trained
    for name in ("all", "nih", "pc"):
        assert "Mass" in XRV_WEIGHTS[name].trained


@pytest.mark.parametrize(
    ("weights", "output"),
    [("all", "Mass"), ("nih", "Hernia"), ("chex", "Lung Opacity"), ("rsna", "Pneumonia"), ("pc", "Fracture"),
     ("nih", 0), ("chex", 14)],
)
def test_trained_outputs_have_no_problem(weights, output):
    assert untrained_output_problem(weights, output) is None


@pytest.mark.parametrize(
    ("weights", "output"),
    [("chex", "Mass"), ("mimic_ch", "Mass"), ("mimic_nb", "Infiltration"), ("nih", "Fracture"),
     ("rsna", "Effusion"), ("pc", "Lung Opacity"), ("chex", 12)],
)
def test_untrained_output_is_named_with_the_weights(weights, output):
    problem = untrained_output_problem(weights, output)
    name = output if isinstance(output, str) else XRV_TARGETS[output]
    assert problem is not None and "\n" not in problem
    assert f"output {name!r}" in problem
    assert f"weights {weights!r}" in problem
    assert "not trained" in problem
    for trained in XRV_WEIGHTS[weights].trained:
        assert trained in problem


def test_output_that_does_not_exist():
    assert "'Tuberculosis' is not an output of torchxrayvision weights 'nih'" in untrained_output_problem(
        "nih", "Tuberculosis"
    )
    assert "output 18 does not exist" in untrained_output_problem("nih", 18)
    with pytest.raises(ModelSpecError, match="unknown torchxrayvision weights 'densenet'"):
        untrained_output_problem("densenet", "Mass")


def test_file_names(tmp_path):
    assert weights_filename("rsna") == "kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt"
    assert resolve_weights_path("pc", tmp_path) == tmp_path / weights_filename("pc")
    with pytest.raises(ModelSpecError, match="known: all, nih"):
        weights_filename("densenet121-res224-nih")


def test_xrv_card():
    card = xrv_card("chex", "xrv:chex:0")
    assert card.outputs == list(XRV_WEIGHTS["chex"].outputs)
    assert card.outputs[XRV_TARGETS.index("Mass")] == ""
    assert card.training_datasets == ["chexpert"]
    assert card.source == "torchxrayvision:chex"
    assert xrv_card("all", "x").training_datasets == [
        "nih-chestxray14", "padchest", "chexpert", "mimic-cxr", "google-nih", "openi", "rsna-pneumonia",
    ]


@pytest.mark.parametrize(("key", "value"), [("epochs", 0), ("epochs", -3), ("seed", -1), ("seed", 2**40),
                                            ("size", 0), ("size", -64), ("size", 4096), ("patience", 0),
                                            ("epochs", True), ("size", 64.5)])
def test_reference_training_settings_out_of_range_name_the_key(tmp_path, key, value):
    """`[model] train = "reference"` settings are checked when release.toml is read, not when training fails."""
    from synthgate.config.toml import ConfigError, Table
    from synthgate.models.plan import ReferenceModelSpec

    config = tmp_path / "release.toml"
    with pytest.raises(ConfigError, match=rf"release.toml.*model\.{key}"):
        ReferenceModelSpec.from_table(Table({"train": "reference", key: value}, config, "model"))
    assert ReferenceModelSpec.from_table(Table({"train": "reference", key: 3 if key != "size" else 128}, config,
                                               "model")).settings.as_dict()[key] == (3 if key != "size" else 128)


def test_the_reference_model_defaults_to_its_native_224_px_on_a_gpu_and_64_px_on_a_cpu(tmp_path):
    from synthgate.config.toml import Table
    from synthgate.models.plan import ReferenceModelSpec

    def size(table, on_gpu):
        return ReferenceModelSpec.from_table(Table(table, tmp_path / "release.toml", "model"), on_gpu).settings.size

    assert size({"train": "reference"}, on_gpu=True) == 224
    assert size({"train": "reference"}, on_gpu=False) == 64
    assert size({"train": "reference", "size": 128}, on_gpu=True) == 128  # a declared size is kept
