"""Loading the real data a release config points at, as a Collection.

The default layout is a folder with ``manifest.csv``; other layouts (class folders,
MedMNIST, PadChest, NIH tables) go through their adapter in :mod:`synthgate.data.formats`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthgate.config.manifest import read_manifest
from synthgate.config.release import DataRef, resolve_member
from synthgate.config.toml import ConfigError
from synthgate.data import formats
from synthgate.data.collection import Collection
from synthgate.storage import sha256_file


def _label(value: str, manifest: Path, line: int, column: str) -> int:
    if value not in ("0", "1"):
        raise ConfigError(manifest, f"line {line}", f"label '{column}' is {value!r}, expected 0 or 1")
    return int(value)


def from_manifest(folder: Path, name: str, datasets: tuple[str, ...], classes: tuple[str, ...] | None = None) -> Collection:
    """A folder with ``manifest.csv`` (path, optional patient_id, 0/1 class columns).

    Real reference data must be sound before anything is measured on it, so any
    problem here is an error naming the file and line, never a silently dropped row.
    """
    manifest = read_manifest(folder / "manifest.csv")
    classes = classes or manifest.label_columns
    missing = [c for c in classes if c not in manifest.label_columns]
    if missing:
        raise ConfigError(manifest.file, "", f"no column for class(es) {missing}; columns are {list(manifest.columns)}")
    paths, labels, groups = [], [], []
    for row in manifest.rows:
        path, refused = resolve_member(folder, row.path)
        if refused:
            raise ConfigError(manifest.file, f"line {row.line}", f"{row.path}: {refused}")
        if not path.is_file():
            raise ConfigError(manifest.file, f"line {row.line}", f"{row.path}: no such file")
        paths.append(path)
        labels.append([_label(row.labels[c], manifest.file, row.line, c) for c in classes])
        groups.append(row.patient_id or f"image:{row.path}")
    return Collection(
        name=name,
        datasets=datasets,
        paths=tuple(paths),
        digests=tuple(sha256_file(p) for p in paths),
        labels=np.asarray(labels, dtype=np.int64).reshape(len(paths), len(classes)),
        classes=tuple(classes),
        groups=tuple(groups),
    )


def load(ref: DataRef, name: str, classes: tuple[str, ...] | None = None) -> Collection:
    """The collection a release config points at, through the adapter for its format."""
    if ref.format != "manifest":
        return formats.load(ref, name, classes)
    if ref.options:
        raise ConfigError(ref.config_file or ref.path, next(iter(ref.options)), "unknown key for format 'manifest'")
    return from_manifest(ref.path, name, ref.datasets, classes)
