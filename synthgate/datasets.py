"""Labelled image collections: the release itself, and the real data it refers to.

Everything downstream (features, training, leakage, metrics) sees one shape:
file paths, their content hashes, a 0/1 label matrix with named columns, and a
group (patient) per image. Adapters turn each on-disk layout into that shape.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthgate.config import ConfigError
from synthgate.release import DataRef, read_manifest, resolve_member, sha256_file


@dataclass(frozen=True)
class Collection:
    """Images with labels and patient groups; rows align across every field."""

    name: str
    datasets: tuple[str, ...]
    paths: tuple[Path, ...]
    digests: tuple[str, ...]
    labels: np.ndarray  # (n, len(classes)) of 0/1
    classes: tuple[str, ...]
    groups: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def column(self, name: str) -> np.ndarray:
        return self.labels[:, self.classes.index(name)]

    def subset(self, index, name: str | None = None) -> "Collection":
        index = np.asarray(index, dtype=int)
        return Collection(
            name=name or self.name,
            datasets=self.datasets,
            paths=tuple(self.paths[i] for i in index),
            digests=tuple(self.digests[i] for i in index),
            labels=self.labels[index],
            classes=self.classes,
            groups=tuple(self.groups[i] for i in index),
        )

    def concat(self, other: "Collection") -> "Collection":
        if other.classes != self.classes:
            raise ValueError(f"cannot mix collections with classes {self.classes} and {other.classes}")
        return Collection(
            name=f"{self.name} + {other.name}",
            datasets=tuple(dict.fromkeys(self.datasets + other.datasets)),
            paths=self.paths + other.paths,
            digests=self.digests + other.digests,
            labels=np.concatenate([self.labels, other.labels]),
            classes=self.classes,
            groups=self.groups + other.groups,
        )

    @property
    def fingerprint(self) -> str:
        """sha256 over the sorted image hashes: which exact images a model was trained on."""
        return hashlib.sha256("\n".join(sorted(self.digests)).encode()).hexdigest()


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
        from synthgate import adapters  # imported here: adapters build on Collection

        return adapters.load(ref, name, classes)
    if ref.options:
        raise ConfigError(ref.config_file or ref.path, next(iter(ref.options)), "unknown key for format 'manifest'")
    return from_manifest(ref.path, name, ref.datasets, classes)
