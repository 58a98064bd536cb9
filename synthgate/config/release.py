"""A release on disk: ``release.toml`` + ``manifest.csv`` + images.

Loading validates the config strictly (a wrong key or value is a ``ConfigError``
naming the file and key) but keeps the manifest's *content* problems (unknown
labels, missing files, paths escaping the folder) as data: those are gate
findings that the integrity checks report, not reasons to refuse to start.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from synthgate.config.manifest import Manifest, read_manifest
from synthgate.config.settings import DistributionSpec, IntegritySpec, PrivacySpec, StatisticsSpec, UtilitySpec
from synthgate.config.toml import ConfigError, Table, read_toml
from synthgate.storage import sha256_file

CONFIG_NAME = "release.toml"
CLEARANCE_NAME = "clearance.json"
RECORD_KIND = "synthgate clearance record"  # the "record" field of a clearance record (synthgate.clearance)
MAX_RECORD_BYTES = 64 << 20  # a record lists one hash per file: far below this for any release
POLICY_SECTIONS = ("integrity", "utility", "statistics", "distribution", "privacy")
IMAGE_MODES = {"L": 8, "I;16": 16, "RGB": 8}


@dataclass(frozen=True)
class ImageSpec:
    """What every image must be: size, Pillow mode and bit depth."""

    width: int
    height: int
    mode: str

    @property
    def bit_depth(self) -> int:
        return IMAGE_MODES[self.mode]


@dataclass(frozen=True)
class ClassSpec:
    """A release class, the evaluating model's output it maps to, and its minimum count."""

    name: str
    model_output: str
    min_count: int
    smallest_finding_px: int | None = None  # its smallest finding of interest, in delivered pixels (optional)


@dataclass(frozen=True)
class DataRef:
    """A labelled real image collection the release refers to (reference or generator source).

    ``options`` holds the format's own keys; the adapter for ``format`` validates them.
    """

    path: Path
    format: str
    datasets: tuple[str, ...]
    options: dict = field(default_factory=dict, compare=False)
    config_file: Path | None = field(default=None, compare=False)
    config_key: str = field(default="", compare=False)  # its table in config_file, e.g. "reference.train"


@dataclass(frozen=True)
class ReferenceSpec:
    train: DataRef
    test: DataRef


@dataclass(frozen=True)
class Release:
    name: str
    root: Path
    description: str
    generator: str
    source_datasets: tuple[str, ...]
    source_images: DataRef | None
    images: ImageSpec
    classes: tuple[ClassSpec, ...]
    reference: ReferenceSpec | None
    model: dict
    manifest: Manifest
    criteria: dict = field(default_factory=dict)  # thresholds stricter than the policy's, judged by synthgate.gate.policy
    # False for an unconditional generator's release: the manifest has no class columns, and
    # label-based criteria do not apply ([release] labelled = false).
    labelled: bool = True
    # How the checks measure: the gate policy's settings, set by synthgate.gate.policy.apply.
    integrity: IntegritySpec = IntegritySpec()
    utility: UtilitySpec = UtilitySpec()
    statistics: StatisticsSpec = StatisticsSpec()
    distribution: DistributionSpec = DistributionSpec()
    privacy: PrivacySpec = PrivacySpec()

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @cached_property
    def config_hash(self) -> str:
        return hashlib.sha256(self.config_file.read_bytes()).hexdigest()


def load_release(root: Path | str) -> Release:
    """Read and validate ``root/release.toml`` and its manifest."""
    root = Path(root).resolve()
    config_file = root / CONFIG_NAME
    if not root.is_dir():
        raise ConfigError(root, "", "release folder does not exist")
    if not config_file.is_file():
        raise ConfigError(config_file, "", "missing: a release folder needs a release.toml")
    raw = read_toml(config_file)
    top = Table(raw, config_file)
    if top.get("schema", int, 1) != 1:
        raise top.error("schema", "only schema 1 is understood by this version of synthgate")

    about = top.table("release")
    name = about.get("name", str)
    if not name.strip() or name != name.strip() or any(c in name for c in '/\\:\0') or name.startswith("."):
        raise about.error("name", f"must be a plain name (reports and the clearance record are named after it: no "
                                  f"path separator, no leading dot, no surrounding spaces), got {name!r}")
    description = about.get("description", str, "")
    generator = about.get("generator", str)
    source_datasets = tuple(about.get_list("source_datasets", str))
    if not source_datasets:
        raise about.error("source_datasets", "list the data sets the generator learned from (needed for leakage checks)")
    source_images = _data_ref(about.table("source_images", None), root, source_datasets)
    labelled = about.get("labelled", bool, True)
    about.finish()

    images_table = top.table("images")
    images = ImageSpec(
        width=_positive(images_table, "width"),
        height=_positive(images_table, "height"),
        mode=images_table.get("mode", str, choices=IMAGE_MODES),
    )
    manifest_file = images_table.path("manifest", root, "manifest.csv")
    images_table.finish()

    classes = _classes(top.table("classes"), labelled)
    reference = _reference(top.table("reference", None), root)
    model = top.get("model", dict, {})
    criteria = top.get("criteria", dict, {})
    for section in POLICY_SECTIONS:
        if section in raw:
            raise top.error(section, "how the gate measures is set by the gate policy, not by the release "
                                     "(a release may only make thresholds stricter, under [criteria])")
    top.finish()

    return Release(
        name=name,
        root=root,
        description=description,
        generator=generator,
        source_datasets=source_datasets,
        source_images=source_images,
        images=images,
        classes=classes,
        reference=reference,
        model=model,
        manifest=read_manifest(manifest_file),
        criteria=criteria,
        labelled=labelled,
    )


def _positive(table: Table, key: str) -> int:
    value = table.get(key, int)
    if value <= 0:
        raise table.error(key, f"must be a positive integer, got {value}")
    return value


def _classes(table: Table, labelled: bool = True) -> tuple[ClassSpec, ...]:
    """``[classes.NAME]``: the model output each class maps to and, in a labelled release, its minimum count.

    An unlabelled release still declares its classes (what the evaluating model looks for
    in its images), but it has no label counts: ``min_count`` there is an error.
    """
    classes = []
    for name in list(table.data):
        spec = table.table(name)
        if not labelled and "min_count" in spec.data:
            raise spec.error("min_count", "an unlabelled release ([release] labelled = false) has no labels to count; "
                                          "leave min_count out")
        min_count = spec.get("min_count", int, 1 if labelled else 0)
        if min_count < 0:
            raise spec.error("min_count", "must be >= 0")
        smallest = spec.get("smallest_finding_px", int, None)
        if smallest is not None and smallest <= 0:
            raise spec.error("smallest_finding_px", f"must be a positive number of pixels, got {smallest}")
        classes.append(ClassSpec(name, spec.get("model_output", str), min_count, smallest))
        spec.finish()
    if not classes:
        raise table.error("", "declare at least one class, e.g. [classes.\"soft tissue mass\"]")
    return tuple(classes)


def _data_ref(table: Table | None, base: Path, default_datasets: tuple[str, ...] = ()) -> DataRef | None:
    if table is None:
        return None
    path = table.path("path", base)
    datasets = tuple(table.get_list("datasets", str, list(default_datasets)))
    if not datasets:
        raise table.error("datasets", "name the data set(s) these images come from")
    data_format = table.get("format", str, "manifest")
    options = {key: value for key, value in table.data.items() if key not in ("path", "datasets", "format")}
    ref = DataRef(path=path, format=data_format, datasets=datasets, options=options, config_file=table.file,
                  config_key=table.prefix)
    if not path.exists():
        raise table.error("path", f"{path} does not exist")
    return ref


def _reference(table: Table | None, base: Path) -> ReferenceSpec | None:
    if table is None:
        return None
    reference = ReferenceSpec(train=_data_ref(table.table("train"), base), test=_data_ref(table.table("test"), base))
    table.finish()
    return reference


def resolve_member(root: Path, relative: str) -> tuple[Path | None, str | None]:
    """Resolve a manifest path inside ``root``: (path, None) or (None, why it is refused)."""
    if not relative:
        return None, "empty path"
    if os.path.isabs(relative) or relative.startswith(("/", "\\")) or ":" in relative.split("/")[0]:
        return None, "absolute path"
    candidate = root / relative
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root):
        reason = "symlink pointing outside the release" if candidate.is_symlink() else "path escapes the release folder"
        return None, reason
    return candidate, None


def is_clearance_record(path: Path) -> bool:
    """Whether ``path`` is a regular file holding a JSON object whose ``record`` is ``RECORD_KIND``.

    Read without following a symlink or blocking on a FIFO; anything else is not a record.
    """
    try:
        found = path.lstat()
        if not stat.S_ISREG(found.st_mode) or found.st_size > MAX_RECORD_BYTES:
            return False
        record = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(record, dict) and record.get("record") == RECORD_KIND


def control_files(release: Release) -> set[Path]:
    """The release's own files that are not images: its config, its manifest and a delivered clearance record.

    A ``clearance.json`` that is not a clearance record is an ordinary file, checked like any other:
    the name alone must not hide arbitrary content from the gate.
    """
    record = release.root / CLEARANCE_NAME
    return {release.config_file, release.manifest.file} | ({record} if is_clearance_record(record) else set())


def release_files(release: Release) -> list[str]:
    """Every file in the release folder other than its control files (``control_files``).

    Nothing is followed here: special files (FIFOs, devices, sockets), symlink loops and
    symlinks to folders are listed as entries too, for the integrity scan to report.
    """
    skip = control_files(release)
    found = []
    for directory, folders, names in os.walk(release.root):  # never follows symlinked folders
        linked = [folder for folder in folders if os.path.islink(os.path.join(directory, folder))]
        for name in names + linked:
            path = Path(directory) / name
            if path not in skip:
                found.append(path.relative_to(release.root).as_posix())
    return sorted(found)


def content_hash(manifest_file: Path, file_digests: dict[str, str]) -> str:
    """Hash of the manifest plus every release file (path and bytes): the release's identity."""
    digest = hashlib.sha256()
    digest.update(b"manifest\t" + sha256_file(manifest_file).encode() + b"\n")
    for relative in sorted(file_digests):
        digest.update(f"{relative}\t{file_digests[relative]}\n".encode())
    return digest.hexdigest()
