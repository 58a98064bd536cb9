"""synthgate.models.loading, .safe_load and .card: loading models safely, checkpoints, cards, specs.

Weight files are made here in torchxrayvision's format (``torch.save`` of a
whole randomly initialised ``xrv.models.DenseNet``); nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import shlex
import shutil
from pathlib import Path

import pytest
import torch

from synthgate.models import loading, plan, safe_load, weights
from synthgate.models.card import ARCHITECTURE, NORMALISATION, ModelCard, card_path
from synthgate.models.errors import ModelCardError, ModelLoadError, ModelSpecError, WeightsNotFoundError
from synthgate.models.plan import ModelSpec
from synthgate.models.weights import XRV_WEIGHTS
from synthgate.storage import fingerprint, sha256_file


@pytest.fixture(scope="module")
def xrv_module() -> torch.nn.Module:
    """A DenseNet whose every parameter and buffer differs from a fresh one."""
    torch.manual_seed(0)
    model = loading.build_densenet(18)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if "running_var" in name else torch.randn_like(tensor) * 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory, xrv_module) -> Path:
    """'nih' saved in torch's zip format, 'all' in the legacy format of xrv's own files."""
    directory = tmp_path_factory.mktemp("xrv-weights")
    torch.save(xrv_module, directory / weights.weights_filename("nih"))
    torch.save(xrv_module, directory / weights.weights_filename("all"), _use_new_zipfile_serialization=False)
    return directory


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Small images keep forward passes cheap; DenseNet121 needs at least 32 px."""
    generator = torch.Generator().manual_seed(1)
    return torch.rand(1, 1, 32, 32, generator=generator) * 2048 - 1024


@pytest.fixture(scope="module")
def expected(xrv_module, images) -> torch.Tensor:
    with torch.no_grad():
        return xrv_module(images)


def make_card(**changes) -> ModelCard:
    card = ModelCard(
        model_id="test-densenet",
        architecture=ARCHITECTURE,
        training_datasets=["padchest"],
        training_fingerprint=fingerprint(["a" * 64, "b" * 64]),
        outputs=[f"finding{i}" for i in range(18)],
        input_size=224,
        normalisation=NORMALISATION,
        validation_metrics={"auroc": {"finding0": 0.75}, "loss": 0.5},
        seed=3,
        library_versions={"torch": "2.13"},
        source="synthgate:test",
    )
    return dataclasses.replace(card, **changes)


# --- loading torchxrayvision weights ----------------------------------------


@pytest.mark.parametrize("name", ["nih", "all"], ids=["zip-format", "legacy-format"])
def test_xrv_weights_load_identical_to_saved_module(name, weights_dir, images, expected):
    loaded = loading.load_model({"xrv": name, "weights_dir": str(weights_dir)})

    assert not loaded.module.training
    with torch.no_grad():
        assert torch.equal(loaded.module(images), expected)
    assert loaded.outputs == list(XRV_WEIGHTS[name].outputs)
    assert loaded.model_id == loaded.card.model_id
    assert loaded.model_id == f"xrv:{name}:" + sha256_file(weights_dir / weights.weights_filename(name))[:16]
    assert loaded.card.source == f"torchxrayvision:{name}"
    assert loaded.card.training_fingerprint is None


def test_allow_list_is_exactly_what_a_pickled_densenet_needs(weights_dir):
    path = weights_dir / weights.weights_filename("nih")
    found = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    assert found == {safe_load.global_name(cls) for cls in safe_load.xrv_module_classes()}


def test_missing_weights_message_names_file_folder_and_url(tmp_path):
    with pytest.raises(WeightsNotFoundError) as caught:
        loading.load_xrv_weights("nih", tmp_path)
    message = str(caught.value)
    assert isinstance(caught.value, ModelLoadError)
    assert weights.weights_filename("nih") == "nih-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt"
    assert weights.weights_filename("nih") in message
    assert str(tmp_path) in message
    assert XRV_WEIGHTS["nih"].weights_url in message


def test_default_weights_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(tmp_path))
    assert weights.default_weights_dir() == tmp_path
    assert weights.resolve_weights_path("pc", weights.default_weights_dir()) == tmp_path / weights.weights_filename("pc")
    with pytest.raises(WeightsNotFoundError, match=str(tmp_path)):
        loading.load_model(ModelSpec(xrv="pc"))
    monkeypatch.delenv(weights.WEIGHTS_DIR_ENV)
    assert weights.default_weights_dir() == Path.home() / ".torchxrayvision" / "models_data"


class CreatesMarker:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def write_malicious(path: Path, marker: Path, kind: str) -> None:
    payload = CreatesMarker(marker)
    if kind == "raw-pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
        return
    container = torch.nn.Linear(2, 2)  # an allowed class carrying the payload
    container.extra = payload
    torch.save(container, path, _use_new_zipfile_serialization=kind == "zip")


@pytest.mark.parametrize("kind", ["zip", "legacy", "raw-pickle"])
def test_malicious_xrv_file_is_refused_and_not_run(kind, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / weights.weights_filename("nih")
    write_malicious(path, marker, kind)

    with pytest.raises(ModelLoadError) as caught:
        loading.load_xrv_weights("nih", tmp_path)

    assert not marker.exists()
    assert str(path) in str(caught.value)
    assert "system" in str(caught.value)  # os.system pickles as posix.system


@pytest.mark.parametrize("kind", ["zip", "raw-pickle"])
def test_malicious_checkpoint_is_refused_and_not_run(kind, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    write_malicious(path, marker, kind)
    make_card().save(card_path(path))

    with pytest.raises(ModelLoadError, match="system") as caught:
        loading.load_checkpoint(path)

    assert not marker.exists()
    assert str(path) in str(caught.value)


def test_unreadable_file_is_a_load_error(tmp_path):
    (tmp_path / weights.weights_filename("pc")).write_bytes(b"<html>rate limited</html>")
    with pytest.raises(ModelLoadError, match="not a readable torch weights file"):
        loading.load_xrv_weights("pc", tmp_path)


def test_wrong_shapes_are_refused(tmp_path):
    torch.save(loading.build_densenet(14), tmp_path / weights.weights_filename("nih"))
    with pytest.raises(ModelLoadError, match=r"wrong shapes: classifier\.bias \(14,\) != \(18,\)"):
        loading.load_xrv_weights("nih", tmp_path)


def test_extra_and_missing_keys_are_refused(tmp_path, xrv_module):
    torch.save({"extra.weight": torch.zeros(3)}, tmp_path / weights.weights_filename("chex"))
    with pytest.raises(ModelLoadError, match=r"missing keys: .*\(\+\d+ more\); unexpected keys: extra\.weight"):
        loading.load_xrv_weights("chex", tmp_path)

    checkpoint = tmp_path / "model.pt"
    state = dict(xrv_module.state_dict(), **{"extra.weight": torch.zeros(3)})
    del state["classifier.bias"]
    torch.save(state, checkpoint)
    make_card().save(card_path(checkpoint))
    with pytest.raises(ModelLoadError, match=r"missing keys: classifier\.bias; unexpected keys: extra\.weight"):
        loading.load_checkpoint(checkpoint)


# --- synthgate checkpoints ---------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, xrv_module) -> tuple[Path, ModelCard]:
    path = tmp_path_factory.mktemp("checkpoint") / "model.pt"
    return path, loading.save_checkpoint(xrv_module, make_card(), path)


def test_checkpoint_round_trip(checkpoint, images, expected):
    path, saved = checkpoint

    loaded = loading.load_model(ModelSpec.from_config({"checkpoint": path.name}, path.parent))

    assert saved.model_id == loaded.model_id == plan.checkpoint_model_id(path)
    assert loaded.card == saved == ModelCard.load(path.parent / "model.pt.card.json")
    assert loaded.outputs == make_card().outputs
    with torch.no_grad():
        assert torch.equal(loaded.module(images), expected)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt", "model.pt.card.json"]


def test_checkpoint_without_card_is_refused(tmp_path):
    torch.save({}, tmp_path / "model.pt")
    with pytest.raises(ModelCardError, match=r"no model card at .*model\.pt\.card\.json"):
        loading.load_checkpoint(tmp_path / "model.pt")


def test_card_of_another_checkpoint_is_refused(tmp_path, checkpoint):
    path, _ = checkpoint
    other = tmp_path / "other.pt"
    torch.save({}, other)
    shutil.copy(card_path(path), card_path(other))
    with pytest.raises(ModelCardError, match="belongs to a different checkpoint"):
        loading.load_checkpoint(other)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="checkpoint not found"):
        loading.load_model({"checkpoint": str(tmp_path / "absent.pt")})


# --- model cards ---------------------------------------------------------------


def test_card_round_trip_is_atomic(tmp_path):
    card = make_card()
    path = tmp_path / "model.pt.card.json"
    card.save(path)
    card.save(path)  # overwriting leaves no temporary files behind
    assert ModelCard.load(path) == card
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert json.loads(path.read_text())["training_datasets"] == ["padchest"]


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d.pop("seed"), "missing key 'seed'"),
        (lambda d: d.update(colour="red"), "unknown key 'colour'"),
        (lambda d: d.update(input_size="224"), "key 'input_size'"),
        (lambda d: d.update(input_size=True), "key 'input_size'"),
        (lambda d: d.update(training_fingerprint="abc"), "key 'training_fingerprint'"),
        (lambda d: d.update(outputs="Effusion"), "key 'outputs'"),
        (lambda d: d.update(training_datasets=[]), "key 'training_datasets'"),
        (lambda d: d.update(validation_metrics={"auroc": "high"}), "key 'validation_metrics'"),
        (lambda d: d.update(library_versions={"torch": 2}), "key 'library_versions'"),
    ],
)
def test_card_validation_names_file_and_key(tmp_path, change, key):
    data = dataclasses.asdict(make_card())
    change(data)
    path = tmp_path / "bad.card.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelCardError) as caught:
        ModelCard.load(path)
    assert str(path) in str(caught.value)
    assert key in str(caught.value)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_card_that_is_not_a_json_object(tmp_path, text):
    path = tmp_path / "bad.card.json"
    path.write_text(text)
    with pytest.raises(ModelCardError, match=str(path)):
        ModelCard.load(path)


def test_card_constructor_validates():
    with pytest.raises(ModelCardError, match="key 'seed'"):
        make_card(seed="0")


# --- specs -----------------------------------------------------------------------


def test_spec_from_config_resolves_relative_paths(tmp_path):
    spec = ModelSpec.from_config({"xrv": "nih", "weights_dir": "weights"}, tmp_path)
    assert spec == ModelSpec(xrv="nih", weights_dir=tmp_path / "weights")
    absolute = tmp_path / "m.pt"
    assert ModelSpec.from_config({"checkpoint": str(absolute)}, Path("/elsewhere")).checkpoint == absolute


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"xrv": "nih", "weigths_dir": "w"}, "unknown key 'weigths_dir'"),
        ({"xrv": "nih", "checkpoint": "m.pt"}, "exactly one of"),
        ({}, "exactly one of"),
        ({"xrv": "densenet"}, "unknown torchxrayvision weights 'densenet'"),
        ({"checkpoint": "m.pt", "weights_dir": "w"}, "'weights_dir' applies only"),
        ({"checkpoint": 3}, "key 'checkpoint' must be a path"),
    ],
)
def test_spec_errors(table, message, tmp_path):
    with pytest.raises(ModelSpecError, match=message):
        ModelSpec.from_config(table, tmp_path)


# --- image-set fingerprints -----------------------------------------------------


def test_image_set_fingerprint_ignores_order():
    hashes = ["c" * 64, "a" * 64, "b" * 64]
    assert fingerprint(hashes) == fingerprint(sorted(hashes))
    assert fingerprint(hashes) != fingerprint(hashes[:2])
