"""Format adapters: each on-disk layout read into a Collection, and every problem named."""

from __future__ import annotations

import contextlib
import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synthgate.config.release import DataRef, load_release
from synthgate.config.toml import ConfigError
from synthgate.data import formats as adapters
from synthgate.data import loading
from synthgate.storage import sha256_file
from tests.conftest import write_handmade_release

KERMANY = Path(__file__).parents[2].parent / "shared/data/kermany-pneumonia"

# Column names of torchxrayvision's shipped tables (read with pandas, nrows=5).
PADCHEST_COLUMNS = [
    "Unnamed: 0", "ImageID", "ImageDir", "StudyDate_DICOM", "StudyID", "PatientID", "PatientBirth", "PatientSex_DICOM",
    "ViewPosition_DICOM", "Projection", "MethodProjection", "Pediatric", "Modality_DICOM", "Manufacturer_DICOM",
    "PhotometricInterpretation_DICOM", "PixelRepresentation_DICOM", "PixelAspectRatio_DICOM", "SpatialResolution_DICOM",
    "BitsStored_DICOM", "WindowCenter_DICOM", "WindowWidth_DICOM", "Rows_DICOM", "Columns_DICOM",
    "XRayTubeCurrent_DICOM", "Exposure_DICOM", "ExposureInuAs_DICOM", "ExposureTime", "RelativeXRayExposure_DICOM",
    "ReportID", "Report", "MethodLabel", "Labels", "Localizations", "LabelsLocalizationsBySentence", "labelCUIS",
    "LocalizationsCUIS",
]
NIH_COLUMNS = [
    "Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender", "View Position",
    "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]",
]


def ref(path: Path, data_format: str, **options) -> DataRef:
    return DataRef(path=path, format=data_format, datasets=("test-set",), options=options)


def image(path: Path, shade: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (4, 4), shade).save(path)
    return path


@contextlib.contextmanager
def raises(key: str, *words: str):
    """Expect a ConfigError at ``key`` whose message holds every one of ``words``."""
    with pytest.raises(ConfigError) as caught:
        yield caught
    assert caught.value.key == key, str(caught.value)
    for word in words:
        assert word in str(caught.value)


# ---------------------------------------------------------------------- class-folders

KERMANY_NAMES = {
    "NORMAL": ["IM-0115-0001.jpeg", "IM-0115-0002.jpeg", "NORMAL2-IM-0395-0001-0001.jpeg", "IM-0429-0001-0002.jpeg"],
    "PNEUMONIA": ["person1_bacteria_1.jpeg", "person1_virus_6.jpeg", "person447_virus_921_1.jpeg"],
}


@pytest.fixture
def folders(tmp_path) -> Path:
    root = tmp_path / "train"
    for shade, (folder, name) in enumerate((f, n) for f, names in KERMANY_NAMES.items() for n in names):
        image(root / folder / name, shade * 10)
    (root / "NORMAL" / ".DS_Store").write_bytes(b"mac")
    (root / ".DS_Store").write_bytes(b"mac")
    return root


def test_class_folders_labels_and_kermany_patients(folders):
    c = loading.load(ref(folders, "class-folders", classes={"pneumonia": "PNEUMONIA"}, patient_id="kermany"),
                      "train", ("pneumonia",))
    names = [p.name for p in c.paths]
    assert names == sorted(KERMANY_NAMES["NORMAL"]) + sorted(KERMANY_NAMES["PNEUMONIA"])
    assert c.labels[:, 0].tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert dict(zip(names, c.groups)) == {
        "IM-0115-0001.jpeg": "IM-0115", "IM-0115-0002.jpeg": "IM-0115", "IM-0429-0001-0002.jpeg": "IM-0429",
        "NORMAL2-IM-0395-0001-0001.jpeg": "NORMAL2-IM-0395", "person1_bacteria_1.jpeg": "person1",
        "person1_virus_6.jpeg": "person1", "person447_virus_921_1.jpeg": "person447",
    }
    assert c.digests == tuple(sha256_file(p) for p in c.paths)
    assert c.datasets == ("test-set",) and c.classes == ("pneumonia",)


def test_negative_folders_default_to_every_other_folder(folders):
    image(folders / "OTHER" / "IM-0900-0001.jpeg", 200)
    options = dict(classes={"pneumonia": "PNEUMONIA"}, patient_id="kermany")
    assert len(loading.load(ref(folders, "class-folders", **options), "t", ("pneumonia",))) == 8
    chosen = loading.load(ref(folders, "class-folders", negative_folders=["NORMAL"], **options), "t", ("pneumonia",))
    assert len(chosen) == 7 and not any(p.parent.name == "OTHER" for p in chosen.paths)


def test_patient_rules_file_and_regex(folders):
    def groups(rule: str) -> Counter:
        c = loading.load(ref(folders, "class-folders", classes={"p": "PNEUMONIA"}, patient_id=rule), "t", ("p",))
        return Counter(c.groups)

    assert groups("file")["image:PNEUMONIA/person1_virus_6.jpeg"] == 1 and len(groups("file")) == 7
    assert groups(r"(\w+?)[-_].*") == {"IM": 3, "person1": 2, "person447": 1, "NORMAL2": 1}
    with raises("patient_id", "exactly one (group)", "has 0"):
        groups(r"person.*|.*IM.*")


@pytest.mark.parametrize(
    "change, options, key, words",
    [
        (None, {"classes": {"pneumonia": "PNEUMONA"}}, "classes.pneumonia", "no folder 'PNEUMONA'"),
        (None, {"classes": {}}, "classes.pneumonia", "release class 'pneumonia' is not mapped"),
        (None, {"classes": {"pneumonia": "PNEUMONIA", "extra": "NORMAL"}}, "classes.extra", "unknown key"),
        (None, {"patient_id": "(person"}, "patient_id", "neither a named rule"),
        (None, {"negative_folder": ["NORMAL"]}, "negative_folder", "did you mean 'negative_folders'"),
        (None, {"negative_folders": ["MISSING"]}, "negative_folders[0]", "is not a folder"),
        (None, {"negative_folders": ["PNEUMONIA"]}, "negative_folders[0]", "is a class folder"),
        ("unnamed", {}, "patient_id", "scan 7.jpeg"),
        ("empty", {}, "classes.pneumonia", "no image in"),
    ],
)
def test_class_folder_problems_name_the_key(folders, change, options, key, words):
    if change == "unnamed":
        image(folders / "PNEUMONIA" / "scan 7.jpeg", 99)
    if change == "empty":
        for file in (folders / "PNEUMONIA").iterdir():
            file.unlink()
    options = {"classes": {"pneumonia": "PNEUMONIA"}, "patient_id": "kermany", **options}
    with raises(key, words):
        loading.load(ref(folders, "class-folders", **options), "t", ("pneumonia",))


def test_non_image_files_and_missing_folder_are_errors(folders, tmp_path):
    options = dict(classes={"p": "PNEUMONIA"}, patient_id="kermany")
    with raises("path", "is not a folder"):
        loading.load(ref(tmp_path / "nowhere", "class-folders", **options), "t", ("p",))
    (folders / "NORMAL" / "notes.txt").write_text("not an image")
    with pytest.raises(ConfigError, match="not an image file") as caught:
        loading.load(ref(folders, "class-folders", **options), "t", ("p",))
    assert caught.value.file.name == "notes.txt"


def test_unknown_format_lists_the_known_ones(folders):
    with raises("format", "unknown data format 'folders'", "class-folders", "medmnist", "padchest", "nih", "manifest"):
        loading.load(ref(folders, "folders"), "t")


@pytest.mark.real_data
@pytest.mark.skipif(not (KERMANY / "train").is_dir(), reason=f"real data absent: {KERMANY}/train")
def test_real_kermany_train_folder():
    c = loading.load(ref(KERMANY / "train", "class-folders", classes={"pneumonia": "PNEUMONIA"}, patient_id="kermany"),
                      "kermany train", ("pneumonia",))
    assert len(c) == 5216
    assert (int((c.labels[:, 0] == 0).sum()), int(c.labels[:, 0].sum())) == (1341, 3875)
    assert all(c.groups) and not any(g.startswith("image:") for g in c.groups)
    per_patient = Counter(c.groups)
    assert sum(n > 1 for n in per_patient.values()) > 100
    assert per_patient["person1"] >= 2


# ---------------------------------------------------------------------- medmnist


def write_npz(path: Path, sizes=(6, 4, 3), rgb=False, labels_per_split=None) -> Path:
    """A MedMNIST-layout .npz: uint8 images and (n, 1) labels (index 1 = pneumonia) per split."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in zip(("train", "val", "test"), sizes):
        shape = (n, 8, 8, 3) if rgb else (n, 8, 8)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (labels_per_split or {}).get(split, (np.arange(n) % 2).reshape(n, 1).astype(np.uint8))
    np.savez(path, **arrays)
    return path


def test_medmnist_extracts_pngs_once_under_the_cache(tmp_path, monkeypatch):
    npz = write_npz(tmp_path / "pneumoniamnist.npz")
    options = dict(split="val", classes={"pneumonia": 1}, cache=str(tmp_path / "cache"))
    c = loading.load(ref(npz, "medmnist", **options), "val", ("pneumonia",))
    folder = tmp_path / "cache" / "medmnist" / sha256_file(npz) / "val"
    assert [p.parent for p in c.paths] == [folder] * 4
    assert c.labels[:, 0].tolist() == [0, 1, 0, 1]
    with np.load(npz) as archive:
        assert all((np.asarray(Image.open(p)) == archive["val_images"][i]).all() for i, p in enumerate(c.paths))
    assert len(set(c.groups)) == 4 and all(g.startswith("image:val/") for g in c.groups)
    assert sorted(p.name for p in folder.parent.iterdir()) == ["val"]  # no staging folder left behind

    monkeypatch.setattr(adapters, "_extract", lambda *args: pytest.fail("extracted twice"))
    again = loading.load(ref(npz, "medmnist", **options), "val", ("pneumonia",))
    assert again.digests == c.digests


def test_medmnist_multi_label_rgb_and_env_cache(tmp_path, monkeypatch):
    labels = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1], [1, 1, 0], [0, 0, 0], [0, 1, 0]], dtype=np.uint8)
    npz = write_npz(tmp_path / "chest.npz", rgb=True, labels_per_split={"train": labels})
    monkeypatch.setenv("SYNTHGATE_CACHE", str(tmp_path / "env-cache"))
    c = loading.load(ref(npz, "medmnist", split="train", classes={"mass": 2, "effusion": 0}), "t", ("mass", "effusion"))
    assert c.labels.tolist() == labels[:, [2, 0]].tolist()
    assert c.paths[0].is_relative_to(tmp_path / "env-cache") and Image.open(c.paths[0]).mode == "RGB"


@pytest.mark.parametrize(
    "options, key, words",
    [
        ({"split": "valid"}, "split", "is not one of"),
        ({"task": "multi-label", "classes": {"pneumonia": 1}}, "classes.pneumonia", "is not valid for"),
        ({"classes": {"pneumonia": 7}}, "classes.pneumonia", "has label 7"),
        ({"classes": {"pneumonia": -1}}, "classes.pneumonia", "is not valid for"),
        ({"cahce": "x"}, "cahce", "did you mean 'cache'"),
    ],
)
def test_medmnist_option_problems(tmp_path, options, key, words):
    npz = write_npz(tmp_path / "p.npz")
    options = {"split": "train", "classes": {"pneumonia": 1}, "cache": str(tmp_path / "c"), **options}
    with raises(key, words):
        loading.load(ref(npz, "medmnist", **options), "t", ("pneumonia",))


def test_medmnist_archive_problems_name_the_array(tmp_path):
    options = dict(split="train", classes={"pneumonia": 1}, cache=str(tmp_path / "c"))
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip")
    with raises("", "not a .npz archive"):
        loading.load(ref(broken, "medmnist", **options), "t", ("pneumonia",))
    partial = tmp_path / "partial.npz"
    np.savez(partial, train_labels=np.zeros((2, 1), np.uint8))
    with raises("train_images", "missing"):
        loading.load(ref(partial, "medmnist", **options), "t", ("pneumonia",))
    three = np.array([[0, 2, 1]] * 6, np.uint8)
    with raises("train_labels", "row 0", "expected 0 or 1"):
        loading.load(ref(write_npz(tmp_path / "m.npz", labels_per_split={"train": three}), "medmnist", **options), "t",
                      ("pneumonia",))
    with raises("task", "multi-class labels have shape (n, 1)"):
        loading.load(ref(tmp_path / "m.npz", "medmnist", task="multi-class", **options), "t", ("pneumonia",))


# ---------------------------------------------------------------------- padchest / nih


def write_table(path: Path, columns: list[str], rows: list[dict]) -> Path:
    pd.DataFrame([{c: row.get(c, "") for c in columns} for row in rows], columns=columns).to_csv(path, index=False)
    return path


@pytest.fixture
def padchest(tmp_path):
    rows = [
        {"ImageID": "a.png", "PatientID": "p1", "Projection": "PA", "Labels": "['soft tissue mass', ' nodule']"},
        {"ImageID": "b.png", "PatientID": "p1", "Projection": "L", "Labels": "[' soft tissue mass']"},
        {"ImageID": "c.png", "PatientID": "p2", "Projection": "PA", "Labels": "['pulmonary mass']"},
        {"ImageID": "d.png", "PatientID": "p3", "Projection": "PA", "Labels": "['normal']"},
        {"ImageID": "e.png", "PatientID": "p4", "Projection": "PA"},  # no labels, as 103 real rows
    ]
    for shade, row in enumerate(rows):
        image(tmp_path / "images" / row["ImageID"], shade)
    return tmp_path / "images", write_table(tmp_path / "padchest.csv", PADCHEST_COLUMNS, rows)


def test_padchest_maps_exact_label_strings(padchest):
    folder, table = padchest
    c = loading.load(ref(folder, "padchest", labels_csv=str(table), classes={"soft tissue mass": "soft tissue mass"}),
                      "t", ("soft tissue mass",))
    assert [p.name for p in c.paths] == ["a.png", "b.png", "c.png", "d.png"]
    assert c.labels[:, 0].tolist() == [1, 1, 0, 0]  # 'pulmonary mass' is not a soft tissue mass
    assert c.groups == ("p1", "p1", "p2", "p3")
    assert c.skipped == {"no labels": 1}
    masses = loading.load(ref(folder, "padchest", labels_csv=str(table), views=["PA"],
                               classes={"mass": ["soft tissue mass", "pulmonary mass"]}), "t", ("mass",))
    assert [p.name for p in masses.paths] == ["a.png", "c.png", "d.png"] and masses.labels[:, 0].tolist() == [1, 1, 0]


def test_absent_images_are_errors_unless_limited_to_present(padchest):
    folder, table = padchest
    (folder / "c.png").unlink()
    (folder / "d.png").unlink()
    options = dict(labels_csv=str(table), classes={"m": "soft tissue mass"})
    with pytest.raises(ConfigError, match="c.png and 1 more") as caught:
        loading.load(ref(folder, "padchest", **options), "t", ("m",))
    assert caught.value.file == table and caught.value.key == "row 3"
    c = loading.load(ref(folder, "padchest", limit_to_present=True, **options), "t", ("m",))
    assert len(c) == 2 and c.skipped == {"no labels": 1, "image file absent": 2}


@pytest.mark.parametrize(
    "options, key, words",
    [
        ({"classes": {"m": "Soft tissue mass"}}, "classes.m", "(close: ['soft tissue mass'])"),
        ({"classes": {"m": []}}, "classes.m", "expected a label string"),
        ({"views": ["AP"]}, "views[0]", "no row has Projection 'AP' (found ['L', 'PA'])"),
        ({"limit_to_present": "yes"}, "limit_to_present", "expected bool"),
        ({"label_csv": "x.csv"}, "label_csv", "did you mean 'labels_csv'"),
    ],
)
def test_padchest_option_problems(padchest, options, key, words):
    folder, table = padchest
    options = {"labels_csv": str(table), "classes": {"m": "soft tissue mass"}, **options}
    with raises(key, words):
        loading.load(ref(folder, "padchest", **options), "t", ("m",))


@pytest.mark.parametrize(
    "rows, key, words",
    [
        ([{"ImageID": "a.png", "PatientID": "p", "Labels": "['mass'"}], "row 1", "cannot read Labels"),
        ([{"ImageID": "a.png", "PatientID": "p", "Labels": "'mass'"}], "row 1", "not a list"),
        ([{"ImageID": "a.png", "Labels": "['mass']"}], "row 1", "empty PatientID"),
        ([{"ImageID": "a.png", "PatientID": "p", "Labels": "['mass']"}] * 2, "row 2", "listed again (first at row 1)"),
        ([{"ImageID": "../a.png", "PatientID": "p", "Labels": "['mass']"}], "row 1", "not a file name"),
    ],
)
def test_padchest_table_rows_are_checked(tmp_path, rows, key, words):
    image(tmp_path / "images" / "a.png", 1)
    table = write_table(tmp_path / "t.csv", PADCHEST_COLUMNS, rows)
    with raises(key, words) as caught:
        loading.load(ref(tmp_path / "images", "padchest", labels_csv=str(table), classes={"m": "mass"}), "t", ("m",))
    assert caught.value.file == table


def test_unreadable_or_foreign_tables_are_errors(tmp_path):
    (tmp_path / "images").mkdir()
    foreign = write_table(tmp_path / "nih.csv", NIH_COLUMNS, [{"Image Index": "a.png"}])
    for table, words in [(tmp_path / "missing.csv", "cannot read the label table"), (foreign, "no column(s) ['ImageID'")]:
        with raises("", words) as caught:
            loading.load(ref(tmp_path / "images", "padchest", labels_csv=str(table), classes={"m": "mass"}), "t", ("m",))
        assert caught.value.file == table


def test_nih_pipe_separated_labels(tmp_path):
    rows = [
        {"Image Index": "00000001_000.png", "Finding Labels": "Mass|Nodule", "Patient ID": 1, "View Position": "PA"},
        {"Image Index": "00000001_001.png", "Finding Labels": "No Finding", "Patient ID": 1, "View Position": "AP"},
        {"Image Index": "00000002_000.png", "Finding Labels": "Nodule", "Patient ID": 2, "View Position": "PA"},
    ]
    for shade, row in enumerate(rows):
        image(tmp_path / "images" / row["Image Index"], shade)
    table = write_table(tmp_path / "nih.csv", NIH_COLUMNS, rows)
    c = loading.load(ref(tmp_path / "images", "nih", labels_csv=str(table), classes={"mass": "Mass", "nodule": "Nodule"}),
                      "t", ("mass", "nodule"))
    assert c.labels.tolist() == [[1, 1], [0, 0], [0, 1]] and c.groups == ("1", "1", "2")
    pa = loading.load(ref(tmp_path / "images", "nih", labels_csv=str(table), views=["PA"], classes={"mass": "Mass"}),
                       "t", ("mass",))
    assert len(pa) == 2


def test_default_tables_are_torchxrayvisions(tmp_path):
    """Without labels_csv the table shipped inside torchxrayvision is read (NIH's is small enough to test)."""
    data = Path(importlib.util.find_spec("torchxrayvision").submodule_search_locations[0]) / "data"
    assert (data / adapters.PADCHEST.file).is_file()
    image(tmp_path / "images" / "00000001_000.png", 1)  # Cardiomegaly in the real table
    image(tmp_path / "images" / "00000002_000.png", 2)  # No Finding
    c = loading.load(ref(tmp_path / "images", "nih", limit_to_present=True, classes={"c": "Cardiomegaly"}), "t", ("c",))
    assert c.labels[:, 0].tolist() == [1, 0] and c.groups == ("1", "2")
    assert c.skipped["image file absent"] == 112_118


# ---------------------------------------------------------------------- from a release.toml


def test_release_config_options_reach_the_adapters(tmp_path, folders):
    root = write_handmade_release(tmp_path / "r", n=2)
    write_npz(tmp_path / "m.npz")
    with open(root / "release.toml", "a") as config:
        config.write("""
[reference.train]
path = "../train"
format = "class-folders"
datasets = ["kermany-pneumonia"]
classes = { "soft tissue mass" = "PNEUMONIA" }
patient_id = "kermany"

[reference.test]
path = "../m.npz"
format = "medmnist"
datasets = ["pneumoniamnist"]
split = "test"
classes = { "soft tissue mass" = 1 }
cache = "../cache"
""")
    release = load_release(root)
    train = loading.load(release.reference.train, "train", release.class_names)
    test = loading.load(release.reference.test, "test", release.class_names)
    assert len(train) == 7 and train.datasets == ("kermany-pneumonia",)
    assert len(test) == 3 and test.paths[0].is_relative_to(tmp_path / "cache")


def test_option_problems_from_a_release_toml_name_the_full_key(tmp_path, folders):
    root = write_handmade_release(tmp_path / "r", n=2)
    with open(root / "release.toml", "a") as config:
        config.write("""
[reference.train]
path = "../train"
format = "class-folders"
datasets = ["kermany-pneumonia"]
classes = { "soft tissue mass" = "PNEUMONIAX" }
patient_id = "kermany"

[reference.test]
path = "../train"
format = "class-folders"
datasets = ["kermany-pneumonia"]
classes = { "soft tissue mass" = "PNEUMONIA" }
patient_id = "kermany"
""")
    release = load_release(root)
    with raises("reference.train.classes.soft tissue mass", "PNEUMONIAX", str(root / "release.toml")):
        loading.load(release.reference.train, "train", release.class_names)
