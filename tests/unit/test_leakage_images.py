"""Leakage on images and patients, not names: what a model saw, image by image; the reference
and the release against the generator's source images; re-encoded and near-duplicate copies;
class outputs the chosen weights were not trained for. Tiny phantom worlds, no model is trained."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthgate.config.release import load_release
from synthgate.config.toml import ConfigError
from synthgate.demo import phantoms
from synthgate.demo.cohort import Item, write_collection
from synthgate.evaluation.leakage import NEAR_DUPLICATE_SIMILARITY, RESTS_ON_NAMES
from synthgate.evaluation.release_evaluation import GateOptions, ReleaseEvaluation
from synthgate.gate.criteria import REGISTRY, of_family
from synthgate.gate.policy import Requirement
from synthgate.gate.verdicts import GateFailure, judge
from synthgate.models.card import (
    ARCHITECTURE,
    NORMALISATION,
    ModelCard,
    SeenImage,
    card_path,
    parse_seen_images,
    pixel_sha256,
    save_seen_images,
    seen_images_path,
)
from synthgate.models.errors import ModelCardError
from synthgate.models.plan import TrainSettings, seen_images
from synthgate.storage import fingerprint, sha256_file

CLASS = "soft tissue mass"
LEAKAGE = [spec.name for spec in of_family("leakage")]

RELEASE_TOML = """\
[release]
name = "leak-test"
generator = "a hand-written test release"
source_datasets = {source_datasets}
source_images = {{ path = "../source" }}

[images]
width = 64
height = 64
mode = "L"

[classes."soft tissue mass"]
model_output = "{output}"
min_count = 1

[reference.train]
path = "../train"
datasets = {reference_datasets}

[reference.test]
path = "../test"
datasets = {reference_datasets}

[model]
{model}
"""
TRAIN_ON_REFERENCE = 'train = "reference"\nsize = 64'


def _items(prefix: str, site: str, n: int, seed: int, patients: bool = True) -> list[Item]:
    items = []
    for k in range(n):
        findings = {CLASS} if k % 2 else set()
        pixels = phantoms.render(seed * 1000 + k, findings, site=site)
        patient = f"{prefix}{k}" if patients else ""
        items.append(Item(f"images/{prefix}{k:03d}.png", pixels, {CLASS: int(bool(findings))}, patient, k))
    return items


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The sets here are tiny: torch's thread pool costs more than it saves (and much more on a busy machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def world(tmp_path) -> Path:
    """Source (site A, 10 patients), reference train / test (site B), a release (site A, new images)."""
    write_collection(tmp_path / "source", _items("s", "site-a", 10, 1))
    write_collection(tmp_path / "train", _items("r", "site-b", 10, 2))
    write_collection(tmp_path / "test", _items("t", "site-b", 8, 3))
    write_collection(tmp_path / "release", _items("x", "site-a", 10, 4), with_patients=False)
    configure(tmp_path)
    return tmp_path


def configure(world: Path, model: str = TRAIN_ON_REFERENCE, output: str = "Mass",
              source_datasets=("phantom-site-a",), reference_datasets=("phantom-site-b",)) -> None:
    (world / "release" / "release.toml").write_text(RELEASE_TOML.format(
        model=model, output=output, source_datasets=json.dumps(list(source_datasets)),
        reference_datasets=json.dumps(list(reference_datasets))))


def evaluate(world: Path) -> ReleaseEvaluation:
    return ReleaseEvaluation(load_release(world / "release"), GateOptions(cache_dir=world / "cache"))


def measured(evaluation: ReleaseEvaluation, name: str):
    return REGISTRY[name].measure(evaluation)


def offending(evaluation: ReleaseEvaluation) -> dict[str, list]:
    return {name: list(found) for name, found in evaluation.leakage.items() if found}


def add_rows(folder: Path, rows: list[dict]) -> None:
    manifest = folder / "manifest.csv"
    lines = manifest.read_text().splitlines()
    columns = lines[0].split(",")
    manifest.write_text("\n".join(lines + [",".join(str(row.get(c, 0)) for c in columns) for row in rows]) + "\n")


def reencode(source: Path, target: Path) -> None:
    with Image.open(source) as image:
        image.save(target, compress_level=0)


# --------------------------------------------------------------------------- clean data


def test_clean_data_passes_every_leakage_check_and_says_what_each_rests_on(world):
    evaluation = evaluate(world)
    assert set(evaluation.leakage) == set(LEAKAGE)
    assert offending(evaluation) == {}
    for name in LEAKAGE:
        result = measured(evaluation, name)
        assert result.value == 0 and not result.rows and not result.problem, name
        assert result.note, name
    images = measured(evaluation, "model_saw_no_source_images").note
    assert "decoded-pixel sha256" in images and "near-duplicate search" in images
    # site A and site B are two data sets: their patient ids are not compared ...
    assert "not comparable" in measured(evaluation, "reference_shares_no_patients_with_source").note
    # ... and neither name is one synthgate knows, which the name check says
    names = measured(evaluation, "model_never_saw_generator_source").note
    assert "'phantom-site-a'" in names and "not in synthgate's table of known data sets" in names
    assert RESTS_ON_NAMES not in names  # the images the model saw are compared too


def test_real_images_of_different_patients_stay_below_the_near_duplicate_limit(world):
    from synthgate.measures.distances import shift_tolerant_similarity

    evaluation = evaluate(world)
    pixels = evaluation.pixels
    similarity, _ = shift_tolerant_similarity(pixels["synthetic"], pixels["reference"])
    assert similarity.max() < NEAR_DUPLICATE_SIMILARITY


# --------------------------------------------------------------------------- what the model saw


def write_checkpoint_card(folder: Path, listed: list[SeenImage] | None, datasets: list[str]) -> Path:
    """A checkpoint's card (and image list) as another team would hand it over; no weights are needed for leakage."""
    checkpoint = folder / "model.pt"
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(b"weights are never read by the leakage checks")
    seen = save_seen_images(listed, seen_images_path(checkpoint)) if listed is not None else None
    ModelCard(
        model_id="their-densenet", architecture=ARCHITECTURE, training_datasets=datasets,
        training_fingerprint=fingerprint([i.file_sha256 for i in listed]) if listed else None, outputs=["Mass"],
        input_size=64, normalisation=NORMALISATION, validation_metrics={}, seed=0, library_versions={},
        source="their training script", seen_images=seen,
    ).save(card_path(checkpoint))
    return checkpoint


def test_a_model_trained_on_the_source_images_under_another_name_is_caught_by_image_hashes(world):
    evaluation = evaluate(world)
    source = evaluation.source_images
    listed = [SeenImage("train", digest, pixel_sha256(path), None, None)  # hashes only: no path, no patient
              for digest, path in zip(source.digests[:3], source.paths[:3])]
    write_checkpoint_card(world / "theirs", listed, ["hospital-x chest films"])
    configure(world, model='checkpoint = "../theirs/model.pt"')
    evaluation = evaluate(world)

    names = measured(evaluation, "model_never_saw_generator_source")
    assert names.value == 0  # the names differ ...
    assert "'hospital-x chest films'" in names.note and "not in synthgate's table" in names.note
    images = measured(evaluation, "model_saw_no_source_images")  # ... the images do not
    assert images.value == 3
    for row, path in zip(images.rows, source.paths[:3]):
        assert row["file"] == f"sha256:{sha256_file(path)}"
        assert f"byte-identical to {path}" in row["problem"] and "generator source images" in row["problem"]
    assert "near-duplicates not searched" in images.note  # the listed files are not at hand
    with pytest.raises(GateFailure, match="3 images the evaluating model was trained or validated on") as caught:
        judge(Requirement("model_saw_no_source_images", None, 0.0, "point", "fixed"), images, 1, 1)
    assert str(source.paths[0]) in str(caught.value)
    # nothing the model saw can be trusted: every model-based family is held back
    assert evaluation.leakage["model_saw_no_source_images"]


def test_a_listed_image_at_hand_is_searched_for_near_duplicates_too(world):
    evaluation = evaluate(world)
    original = evaluation.source_images.paths[0]
    moved = world / "theirs-images" / "moved.png"
    moved.parent.mkdir()
    pixels = np.asarray(Image.open(original)).astype(np.int16)
    Image.fromarray(np.clip(np.roll(pixels, (1, 2), axis=(0, 1)) + 1, 0, 255).astype(np.uint8)).save(moved)
    listed = [SeenImage("train", sha256_file(moved), pixel_sha256(moved), None, str(moved))]
    listed += [SeenImage("validation", sha256_file(p), pixel_sha256(p), None, str(p)) for p in evaluation.reference_test.paths[:3]]
    write_checkpoint_card(world / "theirs", listed, ["hospital-x"])
    configure(world, model='checkpoint = "../theirs/model.pt"')
    found = offending(evaluate(world))
    assert set(found) == {"model_saw_no_source_images"}
    [offence] = found["model_saw_no_source_images"]
    assert offence.file == str(moved) and f"a near-duplicate of {original}" in offence.problem


def test_a_card_whose_image_list_was_changed_is_refused(world):
    evaluation = evaluate(world)
    source = evaluation.source_images
    checkpoint = write_checkpoint_card(world / "theirs", [SeenImage("train", source.digests[0])], ["hospital-x"])
    sidecar = seen_images_path(checkpoint)
    sidecar.write_text(sidecar.read_text().replace(source.digests[0], "0" * 64))
    configure(world, model='checkpoint = "../theirs/model.pt"')
    evaluation = evaluate(world)
    result = measured(evaluation, "model_saw_no_source_images")
    assert "does not match the sha256" in result.problem
    assert evaluation.leakage["model_never_saw_generator_source"]  # truthy: the model-based checks are held back


def test_a_checkpoint_without_an_image_list_rests_on_data_set_names(world):
    """Names are compared; the image checks lack their input, which fails unless the policy accepts it missing."""
    write_checkpoint_card(world / "theirs", None, ["hospital-x"])
    configure(world, model='checkpoint = "../theirs/model.pt"')
    evaluation = evaluate(world)
    assert offending(evaluation) == {}
    assert RESTS_ON_NAMES in measured(evaluation, "model_never_saw_generator_source").note
    images = measured(evaluation, "model_saw_no_source_images")
    assert RESTS_ON_NAMES in images.problem and images.missing_input == "model_image_list"


def test_published_weights_rest_on_data_set_names(world):
    configure(world, model='xrv = "nih"', source_datasets=("RANZCR CLiP",))
    evaluation = evaluate(world)
    names = measured(evaluation, "model_never_saw_generator_source")
    assert names.value == 1 and RESTS_ON_NAMES in names.rows[0]["problem"]  # RANZCR CLiP is NIH images
    assert "nih-chestxray14" in names.rows[0]["problem"]
    for check in ("model_saw_no_source_images", "model_saw_no_source_patients", "release_holds_no_model_training_images"):
        result = measured(evaluation, check)  # cannot run: a failure unless the policy accepts the missing list
        assert result.missing_input == "model_image_list"
        assert "published weights" in result.problem and RESTS_ON_NAMES in result.problem


def test_a_model_trained_on_the_source_is_caught_by_name_image_and_patient(world):
    configure(world, model='train = "source"\nsize = 64')
    found = offending(evaluate(world))
    assert set(found) == {"model_never_saw_generator_source", "model_saw_no_source_images", "model_saw_no_source_patients"}
    assert len(found["model_saw_no_source_images"]) == 10
    assert found["model_saw_no_source_patients"][0].file == "patient s0"


# --------------------------------------------------------------------------- reference and release


def test_reference_train_overlapping_the_source_is_caught(world):
    for k in (1, 4):
        shutil.copyfile(world / "source" / f"images/s{k:03d}.png", world / "train" / f"images/from-source-{k}.png")
    add_rows(world / "train", [{"path": f"images/from-source-{k}.png", "patient_id": f"moved{k}", CLASS: k % 2}
                               for k in (1, 4)])
    found = offending(evaluate(world))
    # the model trains on the reference train split, so it saw them too
    assert set(found) == {"reference_holds_no_source_images", "model_saw_no_source_images"}
    rows = [(o.file, o.problem) for o in found["reference_holds_no_source_images"]]
    assert [Path(file).name for file, _ in rows] == ["from-source-1.png", "from-source-4.png"]
    assert all("byte-identical to" in problem and "/source/images/s00" in problem for _, problem in rows)


def test_a_reencoded_reference_test_image_in_the_release_is_caught_by_its_pixels(world):
    original = world / "test" / "images/t002.png"
    copy = world / "release" / "images/reencoded.png"
    reencode(original, copy)
    assert copy.read_bytes() != original.read_bytes()
    assert pixel_sha256(copy) == pixel_sha256(original)
    add_rows(world / "release", [{"path": "images/reencoded.png", CLASS: 0}])
    found = offending(evaluate(world))
    assert set(found) == {"release_holds_no_reference_test_images"}
    [offence] = found["release_holds_no_reference_test_images"]
    assert offence.file == str(copy)
    assert f"the same decoded pixels as {original}" in offence.problem and "re-encoded" in offence.problem


def test_a_changed_release_redoes_only_its_own_comparisons(world, monkeypatch):
    """The data sets' comparisons (reference splits, source, the model's images) are cached apart from the release's:
    a new or changed release reuses them, and still has its own images compared; the near-duplicate search
    looks at the images it has not seen before only, and finds what a search of every image finds."""
    from synthgate.measures import distances

    assert not offending(evaluate(world))
    searched = []
    search = distances.shift_tolerant_similarity

    def counted(queries, references, **options):
        searched.append(len(queries))
        return search(queries, references, **options)

    monkeypatch.setattr(distances, "shift_tolerant_similarity", counted)
    original = np.asarray(Image.open(world / "test" / "images/t003.png")).astype(np.float32)
    moved = np.clip(np.roll(original, (2, -1), axis=(0, 1)) + 1.5, 0, 255).astype(np.uint8)
    Image.fromarray(moved).save(world / "release" / "images/moved.png")
    reencode(world / "test" / "images/t002.png", world / "release" / "images/reencoded.png")
    add_rows(world / "release", [{"path": "images/reencoded.png", CLASS: 0}, {"path": "images/moved.png", CLASS: 1}])
    found = offending(evaluate(world))
    assert set(found) == {"release_holds_no_reference_test_images"}
    assert {Path(o.file).name for o in found["release_holds_no_reference_test_images"]} == {"reencoded.png", "moved.png"}
    # the two new images: against the reference test only the moved one (the re-encoded one matched by its pixel
    # hash), against the model's images both; none of the ten the release held before
    assert searched == [1, 2]
    results = world / "cache" / "results"
    assert len(list((results / "leakage-data-sets").glob("*.pkl"))) == 1  # computed for the first release, reused
    assert len(list((results / "leakage").glob("*.pkl"))) == 2
    shutil.rmtree(results / "leakage")
    shutil.rmtree(results / "near-duplicates")
    searched.clear()
    assert offending(evaluate(world)) == found and searched == [11, 12]  # a whole search finds what the cache gave


def test_a_shifted_and_noised_reference_test_image_in_the_release_is_caught_as_a_near_duplicate(world):
    original = world / "test" / "images/t003.png"
    pixels = np.asarray(Image.open(original)).astype(np.float32)
    noise = np.random.default_rng(0).normal(0, 2.0, pixels.shape)
    moved = np.clip(np.roll(pixels, (2, -1), axis=(0, 1)) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(moved).save(world / "release" / "images/moved.png")
    add_rows(world / "release", [{"path": "images/moved.png", CLASS: 1}])
    found = offending(evaluate(world))
    assert set(found) == {"release_holds_no_reference_test_images"}
    [offence] = found["release_holds_no_reference_test_images"]
    assert offence.file.endswith("moved.png") and f"a near-duplicate of {original}" in offence.problem
    assert "pixel similarity" in offence.problem


def test_a_release_image_the_model_was_trained_on_is_caught(world):
    reencode(world / "train" / "images/r005.png", world / "release" / "images/seen.png")
    add_rows(world / "release", [{"path": "images/seen.png", CLASS: 1}])
    found = offending(evaluate(world))
    assert set(found) == {"release_holds_no_model_training_images"}
    assert "/train/images/r005.png" in found["release_holds_no_model_training_images"][0].problem


def test_patients_are_compared_across_aliases_of_one_data_set(world):
    """The reference says "NIH ChestX-ray14", the generator's source "nih": one data set, one id space.

    A reference-train patient who is also a source patient is found; it is also found
    among the model's patients when it is in the part the model trains on (the
    backbone), and not when it is in the probe pool, which the model never sees.
    """
    manifest = world / "source" / "manifest.csv"
    original = manifest.read_text()
    configure(world, source_datasets=("nih",), reference_datasets=("NIH ChestX-ray14",))
    seen_by_model = {}
    for k in range(10):
        manifest.write_text(original.replace(f"s{k},", f"r{k},", 1))  # source patient s{k} is reference patient r{k}
        evaluation = evaluate(world)
        in_backbone = f"r{k}" in evaluation.training_collection.groups
        found = offending(evaluation)
        assert set(found) == {"reference_shares_no_patients_with_source", "model_never_saw_generator_source"} | (
            {"model_saw_no_source_patients"} if in_backbone else set())
        [offence] = found["reference_shares_no_patients_with_source"]
        assert offence.file == f"patient r{k}" and f"s{k:03d}.png" in offence.problem and f"r{k:03d}.png" in offence.problem
        assert "not in synthgate's table" not in measured(evaluation, "model_never_saw_generator_source").note
        seen_by_model[in_backbone] = k
        if len(seen_by_model) == 2:
            break
    assert set(seen_by_model) == {True, False}, seen_by_model  # both sides of the backbone split were tried


def test_reference_splits_without_patient_ids_say_so(world):
    write_collection(world / "test", _items("t", "site-b", 8, 3), with_patients=False)
    result = measured(evaluate(world), "reference_splits_share_no_patients")
    assert result.problem == "not checked: reference test carry no patient ids" and result.missing_input == "patient_ids"


def test_a_reencoded_copy_across_the_reference_split_is_caught(world):
    reencode(world / "train" / "images/r001.png", world / "test" / "images/again.png")
    add_rows(world / "test", [{"path": "images/again.png", "patient_id": "new", CLASS: 1}])
    found = offending(evaluate(world))
    assert set(found) == {"reference_splits_share_no_images"}
    assert "the same decoded pixels as" in found["reference_splits_share_no_images"][0].problem


# --------------------------------------------------------------------------- class outputs


def test_a_class_mapped_to_an_output_the_weights_never_learned_is_refused_when_the_evaluation_opens(world):
    configure(world, model='xrv = "chex"')  # CheXpert weights never learned "Mass"
    with pytest.raises(ConfigError) as caught:
        evaluate(world)
    message = str(caught.value)
    assert "classes.soft tissue mass.model_output" in message
    assert "'soft tissue mass'" in message and "'Mass'" in message and "'chex'" in message
    configure(world, model='xrv = "nih"')
    evaluate(world)  # NIH weights did


# --------------------------------------------------------------------------- the card's image list


def test_what_a_trained_model_saw_is_listed_image_by_image(world):
    evaluation = evaluate(world)
    train = evaluation.reference_train
    listed = seen_images(train, TrainSettings())
    assert [i.file_sha256 for i in listed] == list(train.digests)
    assert [i.patient_id for i in listed] == list(train.groups)
    assert {i.role for i in listed} == {"train", "validation"}
    assert all(i.pixel_sha256 == pixel_sha256(p) for i, p in zip(listed, train.paths))

    checkpoint = write_checkpoint_card(world / "ours", list(listed), ["phantom-site-b"])
    card = ModelCard.load(card_path(checkpoint))
    assert card.seen_images["count"] == len(train)
    assert card.seen_images["sha256"] == sha256_file(seen_images_path(checkpoint))
    assert card.load_seen_images(card_path(checkpoint)) == listed


def test_cards_without_an_image_list_still_load(tmp_path):
    card = ModelCard(model_id="m", architecture=ARCHITECTURE, training_datasets=["nih"], training_fingerprint=None,
                     outputs=["Mass"], input_size=224, normalisation=NORMALISATION, validation_metrics={}, seed=0,
                     library_versions={}, source="old")
    data = dataclasses.asdict(card)
    del data["seen_images"]
    path = tmp_path / "old.card.json"
    path.write_text(json.dumps(data))
    assert ModelCard.load(path) == card and card.load_seen_images(path) is None


@pytest.mark.parametrize("reference", [
    {"file": "../elsewhere.json", "sha256": "a" * 64, "count": 1},
    {"file": "x.images.json", "sha256": "abc", "count": 1},
    {"file": "x.images.json", "sha256": "a" * 64, "count": -1},
    {"file": "x.images.json", "sha256": "a" * 64},
])
def test_a_malformed_image_list_reference_is_refused(tmp_path, reference):
    card = ModelCard(model_id="m", architecture=ARCHITECTURE, training_datasets=["nih"], training_fingerprint=None,
                     outputs=["Mass"], input_size=224, normalisation=NORMALISATION, validation_metrics={}, seed=0,
                     library_versions={}, source="old")
    data = dataclasses.asdict(card) | {"seen_images": reference}
    path = tmp_path / "bad.card.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelCardError, match="key 'seen_images'"):
        ModelCard.load(path)


@pytest.mark.parametrize("text, words", [
    ('{"format": "synthgate-seen-images/1", "images": [{"role": "train"}]}', "missing key 'file_sha256'"),
    ('{"format": "synthgate-seen-images/1", "images": [{"role": "test", "file_sha256": "' + "a" * 64 + '"}]}',
     "key 'role'"),
    ('{"format": "synthgate-seen-images/1", "images": [{"role": "train", "file_sha256": "' + "a" * 64
     + '", "label": 1}]}', "unknown key 'label'"),
    ('{"format": "other", "images": []}', "format"),
    ("[1, 2]", "JSON object"),
])
def test_image_list_entries_are_validated(text, words):
    with pytest.raises(ModelCardError, match=words):
        parse_seen_images(text.encode(), "list.json")


def test_the_pixel_hash_is_the_picture_not_the_file(tmp_path):
    pixels = phantoms.render(5, set(), site="site-b")
    Image.fromarray(pixels).save(tmp_path / "a.png")
    Image.fromarray(pixels).save(tmp_path / "b.png", compress_level=0)
    Image.fromarray(pixels).convert("RGB").save(tmp_path / "c.png")
    Image.fromarray(pixels.astype(np.uint16) * 257).save(tmp_path / "d.png")
    Image.fromarray(np.roll(pixels, 1, axis=0)).save(tmp_path / "e.png")
    (tmp_path / "f.png").write_bytes(b"not an image")
    hashes = [pixel_sha256(tmp_path / f"{name}.png") for name in "abcdef"]
    assert len(set(sha256_file(tmp_path / f"{name}.png") for name in "abcd")) == 4
    assert hashes[0] == hashes[1] == hashes[2] == hashes[3]
    assert hashes[4] != hashes[0] and hashes[5] is None


def test_a_model_trained_here_leaves_its_image_list_beside_its_checkpoint(world, monkeypatch):
    """trained_model writes the list before the card; the card names and hashes it (training itself is stubbed)."""
    from synthgate.models import training
    from synthgate.models.loading import build_densenet

    evaluation = evaluate(world)
    train = evaluation.reference_train
    monkeypatch.setattr(training, "train_densenet", lambda collection, settings, device, **_: training.TrainResult(
        build_densenet(1).eval(), 1, {"Mass": 0.5}, []))
    loaded = training.trained_model(train, ("Mass",), TrainSettings(), world / "cache", "cpu")
    checkpoint = next((world / "cache" / "models").glob("*/densenet121.pt"))
    assert loaded.card.seen_images["file"] == seen_images_path(checkpoint).name
    assert loaded.card.load_seen_images(card_path(checkpoint)) == seen_images(train, TrainSettings())

    # a damaged copy in synthgate's own cache is trained again, with a warning, never a crash later on
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="damaged cached model"):
        again = training.trained_model(train, ("Mass",), TrainSettings(), world / "cache", "cpu")
    assert again.card.seen_images == loaded.card.seen_images and checkpoint.stat().st_size > 1000

    # the same checkpoint brought in by path: its images are compared, and are the reference train split
    configure(world, model=f'checkpoint = "{checkpoint}"')
    reencode(world / "train" / "images/r002.png", world / "release" / "images/seen.png")
    add_rows(world / "release", [{"path": "images/seen.png", CLASS: 0}])
    found = offending(evaluate(world))
    assert set(found) == {"release_holds_no_model_training_images"}
    assert "/train/images/r002.png" in found["release_holds_no_model_training_images"][0].problem
