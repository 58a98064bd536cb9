"""Adapters: turn the on-disk layout of a public data set into a ``Collection``.

A release's ``[reference.*]`` / ``[release.source_images]`` table names a
``format``; every format except ``manifest`` is read here. The table's extra keys
are the format's options, read strictly (an unknown key is an error with a
did-you-mean). Reference data must be sound before anything is measured on it,
so every problem is a ``ConfigError`` naming the file and key or row: nothing is
dropped silently. The only rows ever left out of a label table are counted in
``TableCollection.skipped``.

Class names are the release's; each format's ``classes`` option maps every
release class to the data set's own label for it (a folder, an index, a label
string). A mapped label that no image carries is an error: a misspelt label
would otherwise make a class silently all-negative.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from synthgate.config.release import DataRef
from synthgate.config.toml import ConfigError, Table
from synthgate.data.collection import Collection
from synthgate.storage import default_cache_dir, sha256_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Kermany file names, including the few with an extra "-<k>" / "_<k>" counter
# (IM-0429-0001-0001.jpeg, person447_virus_921_1.jpeg) found in the real data.
PATIENT_RULES = {
    "kermany": re.compile(r"(person\d+)_(?:bacteria|virus)_\d+(?:_\d+)*\.jpe?g|((?:NORMAL2-)?IM-\d+)(?:-\d+)+\.jpe?g"),
}
MEDMNIST_SPLITS = ("train", "val", "test")
MEDMNIST_TASKS = ("multi-class", "multi-label")


@dataclass(frozen=True)
class TableCollection(Collection):
    """A collection read from a label table.

    ``skipped`` counts table rows left out, by reason: rows whose label cell is
    empty (PadChest has 103: they are neither positive nor negative), and, with
    ``limit_to_present = true``, rows whose image file is absent. Rows outside the
    selected ``views`` are a selection, not skipped, and are not counted.
    """

    skipped: dict[str, int] = field(default_factory=dict)


def load(ref: DataRef, name: str, classes: tuple[str, ...] | None = None) -> Collection:
    """The collection for ``ref``, read by the adapter for its format."""
    options = Table(ref.options, ref.config_file or ref.path, ref.config_key)
    adapter = FORMATS.get(ref.format)
    if adapter is None:
        raise options.error("format", f"unknown data format {ref.format!r} (known: manifest, {', '.join(FORMATS)})")
    return adapter(ref, options, name, classes)


# ---------------------------------------------------------------------- shared


def _base(ref: DataRef) -> Path:
    """Relative option paths are relative to the config file, like ``path``."""
    return ref.config_file.parent if ref.config_file else Path.cwd()


def _class_map(options: Table, classes: tuple[str, ...] | None, kind) -> dict:
    """``options.classes`` read as release class -> the format's label: every class mapped, nothing else."""
    table = options.table("classes")
    names = classes if classes is not None else tuple(table.data)
    if not names:
        raise options.error("classes", "map at least one class")
    unmapped = [c for c in names if c not in table.data]
    if unmapped:
        raise table.error(unmapped[0], f"release class {unmapped[0]!r} is not mapped (map every class: {list(names)})")
    mapping = {c: table.get(c, kind) for c in names}
    table.finish()
    return mapping


def _collection(ref: DataRef, name: str, options: Table, mapping: dict, paths: list[Path], labels,
                groups: list[str], vocabulary: list[str] = (), cls: type = Collection, **extra) -> Collection:
    """Build the collection after checking that every class has at least one positive image."""
    labels = np.asarray(labels, dtype=bool).reshape(len(paths), len(mapping))
    for column, (class_name, label) in enumerate(mapping.items()):
        if not labels[:, column].any():
            wanted = label if isinstance(label, list) else [label]
            close = sorted({m for s in wanted for m in difflib.get_close_matches(str(s), vocabulary, n=3)})
            hint = f" (close: {close})" if close else ""
            shown = " or ".join(repr(s) for s in wanted)
            raise options.error(f"classes.{class_name}", f"no image in {ref.path} has label {shown}{hint}")
    return cls(
        name=name,
        datasets=ref.datasets,
        paths=tuple(paths),
        digests=tuple(sha256_file(p) for p in paths),
        labels=labels.astype(np.int64),
        classes=tuple(mapping),
        groups=tuple(groups),
        **extra,
    )


# ---------------------------------------------------------------------- class-folders


def load_class_folders(ref: DataRef, options: Table, name: str, classes: tuple[str, ...] | None) -> Collection:
    """``path/<FOLDER>/*.{png,jpg,jpeg}``: a class's images are those in the folder it is mapped to.

    Hidden entries (``.DS_Store``) are ignored; any other non-image entry in a
    folder that is read is an error, so that no image is left out unnoticed.
    """
    root = ref.path
    mapping = _class_map(options, classes, str)
    patient = _patient_rule(options)
    if not root.is_dir():
        raise options.error("path", f"{root} is not a folder")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for class_name, folder in mapping.items():
        if folder not in folders:
            raise options.error(f"classes.{class_name}", f"no folder {folder!r} in {root} (found {folders})")
    negatives = options.get_list("negative_folders", str, [f for f in folders if f not in mapping.values()])
    for index, folder in enumerate(negatives):
        if folder not in folders or folder in mapping.values():
            why = "is a class folder" if folder in folders else f"is not a folder in {root} (found {folders})"
            raise options.error(f"negative_folders[{index}]", f"{folder!r} {why}")
    options.finish()

    paths, labels, groups, unmatched = [], [], [], []
    for folder in sorted({*mapping.values(), *negatives}):
        for file in sorted((root / folder).iterdir()):
            if file.name.startswith("."):
                continue
            if not (file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES):
                raise ConfigError(file, "", f"not an image file ({', '.join(IMAGE_SUFFIXES)}) in a class folder")
            group = patient(file)
            if group is None:
                unmatched.append(file)
            paths.append(file)
            labels.append([folder == mapping[c] for c in mapping])
            groups.append(group)
    if unmatched:
        more = f" and {len(unmatched) - 1} more file(s)" if len(unmatched) > 1 else ""
        raise options.error("patient_id", f"no patient id in file name {unmatched[0]}{more}")
    return _collection(ref, name, options, mapping, paths, labels, groups)


def _patient_rule(options: Table) -> Callable[[Path], str | None]:
    """The ``patient_id`` option as a function file -> patient id (None when the name does not match)."""
    rule = options.get("patient_id", str)
    if rule == "file":
        return lambda file: f"image:{file.parent.name}/{file.name}"
    pattern = PATIENT_RULES.get(rule)
    if pattern is None:
        known = ", ".join(["file", *PATIENT_RULES])
        try:
            pattern = re.compile(rule)
        except re.error as error:
            raise options.error("patient_id", f"neither a named rule ({known}) nor a valid regex: {error}") from None
        if pattern.groups != 1:
            raise options.error("patient_id", f"a regex needs exactly one (group), capturing the patient id; "
                                              f"{rule!r} has {pattern.groups}")

    def patient(file: Path) -> str | None:
        match = pattern.fullmatch(file.name)
        return next((g for g in match.groups() if g), None) if match else None

    return patient


# ---------------------------------------------------------------------- medmnist


def load_medmnist(ref: DataRef, options: Table, name: str, classes: tuple[str, ...] | None) -> Collection:
    """One split of a MedMNIST ``.npz``, its images extracted once to PNG files under the cache.

    MedMNIST publishes no patient ids, so every image is its own group: patient
    leakage between its splits cannot be checked.
    """
    split = options.get("split", str, choices=MEDMNIST_SPLITS)
    mapping = _class_map(options, classes, int)
    task = options.get("task", str, None, choices=MEDMNIST_TASKS)
    cache = options.path("cache", _base(ref), None) or default_cache_dir()
    options.finish()
    npz = ref.path
    if not npz.is_file():
        raise options.error("path", f"{npz} is not a file (a MedMNIST .npz)")
    target = cache / "medmnist" / sha256_file(npz) / split
    with _open_npz(npz) as archive:
        labels = _npz_array(archive, npz, f"{split}_labels")
        task = _check_labels(labels, task, npz, f"{split}_labels", options)
        if not target.is_dir():
            _extract(_npz_array(archive, npz, f"{split}_images"), len(labels), target, npz, f"{split}_images")

    for class_name, index in mapping.items():
        if index < 0 or task == "multi-label" and index >= labels.shape[1]:
            raise options.error(f"classes.{class_name}",
                                f"label index {index} is not valid for {task} {split}_labels of shape {labels.shape}")
    columns = [labels[:, 0] == i if task == "multi-class" else labels[:, i] == 1 for i in mapping.values()]
    paths = [target / f"{i:06d}.png" for i in range(len(labels))]
    if not all(p.is_file() for p in paths):
        raise ConfigError(target, "", f"extracted images do not match {npz} (delete this folder to extract again)")
    groups = [f"image:{split}/{i:06d}" for i in range(len(labels))]
    return _collection(ref, name, options, mapping, paths, np.stack(columns, axis=1), groups)


def _open_npz(npz: Path) -> np.lib.npyio.NpzFile:
    if not zipfile.is_zipfile(npz):
        raise ConfigError(npz, "", "not a .npz archive (MedMNIST ships .npz files)")
    try:
        return np.load(npz)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ConfigError(npz, "", f"unreadable .npz archive: {error}") from None


def _npz_array(archive: np.lib.npyio.NpzFile, npz: Path, key: str) -> np.ndarray:
    if key not in archive.files:
        raise ConfigError(npz, key, f"missing (this .npz has {', '.join(archive.files)})")
    try:
        return archive[key]
    except (OSError, ValueError, zipfile.BadZipFile, zlib.error) as error:
        raise ConfigError(npz, key, f"unreadable: {error}") from None


def _check_labels(labels: np.ndarray, task: str | None, npz: Path, key: str, options: Table) -> str:
    """Validate a labels array against ``task`` (inferred from its shape when not given); return the task."""
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(npz, key, f"expected integer labels of shape (n, k), got {labels.dtype} {labels.shape}")
    task = task or ("multi-class" if labels.shape[1] == 1 else "multi-label")
    if task == "multi-class" and labels.shape[1] != 1:
        raise options.error("task", f"multi-class labels have shape (n, 1); {key} has {labels.shape}")
    valid = labels >= 0 if task == "multi-class" else np.isin(labels, (0, 1))
    bad = np.flatnonzero(~valid.all(axis=1))
    if bad.size:
        expected = "a class index >= 0" if task == "multi-class" else "0 or 1"
        raise ConfigError(npz, key, f"row {bad[0]} is {labels[bad[0]].tolist()}, expected {expected}")
    return task


def _extract(images: np.ndarray, n: int, target: Path, npz: Path, key: str) -> None:
    """Write ``images`` as PNGs into ``target`` atomically: staged in a sibling folder, then renamed."""
    grey = images.ndim == 3
    if images.dtype != np.uint8 or not (grey or images.ndim == 4 and images.shape[3] == 3):
        raise ConfigError(npz, key, f"expected uint8 (n, H, W) or (n, H, W, 3), got {images.dtype} {images.shape}")
    if len(images) != n:
        raise ConfigError(npz, key, f"{len(images)} images but {n} labels")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for index, pixels in enumerate(images):
            Image.fromarray(pixels).save(staging / f"{index:06d}.png")
        try:
            os.replace(staging, target)
        except OSError:  # another process extracted the same npz first: its files are identical
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------- padchest / nih


@dataclass(frozen=True)
class LabelTable:
    """Where one of torchxrayvision's shipped label tables keeps what synthgate needs."""

    file: str  # name in torchxrayvision's data folder
    image: str
    patient: str
    labels: str
    view: str
    tokens: Callable[[str], list]  # a label cell -> its label strings


def _padchest_tokens(cell: str) -> list:
    value = ast.literal_eval(cell)  # "['pulmonary mass', ' nodule']"
    if not isinstance(value, list):
        raise ValueError("not a list")
    return value


PADCHEST = LabelTable("PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz", "ImageID", "PatientID", "Labels",
                      "Projection", _padchest_tokens)
NIH = LabelTable("Data_Entry_2017_v2020.csv.gz", "Image Index", "Patient ID", "Finding Labels", "View Position",
                 lambda cell: cell.split("|"))


def load_label_table(spec: LabelTable, ref: DataRef, options: Table, name: str,
                     classes: tuple[str, ...] | None) -> TableCollection:
    """Images in the flat folder ``path``, labelled by a torchxrayvision label table (PadChest, NIH).

    A class is positive where one of the row's labels equals one of its mapped
    strings exactly (after trimming spaces). torchxrayvision matches substrings
    instead, so its "Mass" also takes "pulmonary mass", "breast mass", ...; here a
    class covers only the strings written for it (give a list for several).
    """
    mapping = _class_map(options, classes, (str, list))
    for class_name, label in mapping.items():
        strings = [label] if isinstance(label, str) else label
        if not strings or not all(isinstance(s, str) and s.strip() for s in strings):
            raise options.error(f"classes.{class_name}", f"expected a label string or a list of them, got {label!r}")
        mapping[class_name] = [s.strip() for s in strings]
    table_file = options.path("labels_csv", _base(ref), None) or _xrv_table(spec, options)
    views = options.get_list("views", str) if "views" in options.data else None
    limit_to_present = options.get("limit_to_present", bool, False)
    options.finish()
    if not ref.path.is_dir():
        raise options.error("path", f"{ref.path} is not a folder")
    frame = _read_table(table_file, spec)
    if views is not None:
        known = sorted(frame[spec.view].dropna().unique())
        for index, view in enumerate(views):
            if view not in known:
                raise options.error(f"views[{index}]", f"no row has {spec.view} {view!r} (found {known})")
        frame = frame[frame[spec.view].isin(views)]

    first_row, paths, labels, groups, vocabulary, absent, skipped = {}, [], [], [], set(), [], {}
    for row, image, patient, cell in zip(frame.index + 1, frame[spec.image], frame[spec.patient], frame[spec.labels]):
        if pd.isna(image) or pd.isna(patient):
            raise ConfigError(table_file, f"row {row}", f"empty {spec.image if pd.isna(image) else spec.patient}")
        if image in first_row:
            raise ConfigError(table_file, f"row {row}", f"{image} is listed again (first at row {first_row[image]})")
        first_row[image] = row
        if pd.isna(cell):
            skipped["no labels"] = skipped.get("no labels", 0) + 1
            continue
        try:
            tokens = {str(t).strip() for t in spec.tokens(cell)}
        except (ValueError, SyntaxError) as error:
            raise ConfigError(table_file, f"row {row}", f"cannot read {spec.labels} {cell!r}: {error}") from None
        if Path(image).name != image or image in ("", ".", ".."):
            raise ConfigError(table_file, f"row {row}", f"{image!r} is not a file name (images lie flat in path)")
        path = ref.path / image
        if not path.is_file():
            absent.append((row, image))
            continue
        paths.append(path)
        labels.append([not tokens.isdisjoint(strings) for strings in mapping.values()])
        groups.append(patient)
        vocabulary |= tokens
    if absent and not limit_to_present:
        row, image = absent[0]
        more = f" and {len(absent) - 1} more" if len(absent) > 1 else ""
        raise ConfigError(table_file, f"row {row}",
                          f"no image {ref.path / image}{more} (limit_to_present = true skips absent images)")
    if absent:
        skipped["image file absent"] = len(absent)
    return _collection(ref, name, options, mapping, paths, labels, groups, sorted(vocabulary), TableCollection,
                       skipped=skipped)


def _xrv_table(spec: LabelTable, options: Table) -> Path:
    """The label table shipped inside torchxrayvision, found without importing it (that takes seconds)."""
    found = importlib.util.find_spec("torchxrayvision")
    if found is None or not found.submodule_search_locations:
        raise options.error("labels_csv", "torchxrayvision is not installed: give the label table's path")
    return Path(found.submodule_search_locations[0]) / "data" / spec.file


def _read_table(file: Path, spec: LabelTable) -> pd.DataFrame:
    """The table's four needed columns as text (patient ids stay strings); empty cells are NaN."""
    needed = [spec.image, spec.patient, spec.labels, spec.view]
    try:
        header = list(pd.read_csv(file, nrows=0).columns)
        frame = None if set(needed) - set(header) else pd.read_csv(file, usecols=needed, dtype=str)
    except (OSError, ValueError) as error:
        raise ConfigError(file, "", f"cannot read the label table: {error}") from None
    if frame is None:
        raise ConfigError(file, "", f"no column(s) {[c for c in needed if c not in header]} (columns: {header})")
    return frame


FORMATS = {
    "class-folders": load_class_folders,
    "medmnist": load_medmnist,
    "padchest": partial(load_label_table, PADCHEST),
    "nih": partial(load_label_table, NIH),
}
