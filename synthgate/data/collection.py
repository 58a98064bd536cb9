"""Labelled image collections: the release itself, and the real data it refers to.

Everything downstream (features, training, leakage, metrics) sees one shape:
file paths, their content hashes, a 0/1 label matrix with named columns, and a
group (patient) per image. Adapters turn each on-disk layout into that shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from synthgate.storage import fingerprint, sha256_bytes

UNLABELLED = -1  # the label of every image of an unlabelled release: neither 0 nor 1, so no metric can use it


@dataclass(frozen=True)
class Collection:
    """Images with labels and patient groups; rows align across every field."""

    name: str
    datasets: tuple[str, ...]
    paths: tuple[Path, ...]
    digests: tuple[str, ...]
    labels: np.ndarray  # (n, len(classes)) of 0/1; UNLABELLED throughout for an unlabelled release
    classes: tuple[str, ...]
    groups: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labelled(self) -> bool:
        """Whether every image carries its labels (an unlabelled release's images carry none)."""
        return not (self.labels == UNLABELLED).any()

    def column(self, name: str) -> np.ndarray:
        return self.labels[:, self.classes.index(name)]

    def subset(self, index, name: str | None = None) -> Collection:
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

    def concat(self, other: Collection) -> Collection:
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
        return fingerprint(self.digests)

    @cached_property
    def identity(self) -> str:
        """sha256 over everything a result computed from this collection depends on (order, labels, groups, paths)."""
        text = "\n".join([self.name, *self.datasets, *self.classes, *map(str, self.paths), *self.digests, *self.groups])
        labels = np.ascontiguousarray(self.labels, dtype=np.int64)
        return sha256_bytes(f"{text}\n{labels.shape}".encode() + labels.tobytes())
