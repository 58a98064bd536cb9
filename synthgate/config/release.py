"""A release on disk: ``release.toml`` + ``manifest.csv`` + images.

Loading validates the config strictly (a wrong key or value is a ``ConfigError``
naming the file and key) but keeps the manifest's *content* problems (unknown
labels, missing files, paths escaping the folder) as data: those are gate
findings that the integrity checks report, not reasons to refuse to start.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path

from synthgate.storage import sha256_file
from synthgate.config.toml import ConfigError, Table, read_toml

CONFIG_NAME = "release.toml"
CLEARANCE_NAME = "clearance.json"
IMAGE_MODES = {"L": 8, "I;16": 16, "RGB": 8}
MANIFEST_PATH_COLUMN = "path"
MANIFEST_INFO_COLUMNS = ("patient_id", "prompt", "seed")


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
class IntegritySpec:
    """Tolerances of the integrity checks."""

    blank_std: float = 2.0
    near_duplicate_bits: int = 4


# Gate criteria a release may declare per class: name -> (family, what is compared with the threshold).
CRITERIA = {
    "pretrained_auroc": ("fidelity", "AUROC of the pretrained model on the synthetic images"),
    "pretrained_accuracy": ("fidelity", "accuracy of the pretrained model on the synthetic images"),
    "pretrained_precision": ("fidelity", "precision of the pretrained model on the synthetic images"),
    "pretrained_recall": ("fidelity", "recall of the pretrained model on the synthetic images"),
    "synthetic_minus_real_auroc": ("fidelity", "pretrained AUROC on synthetic minus on real test images"),
    "train_on_synthetic_auroc": ("utility", "real-test AUROC of a model trained on synthetic images only"),
    "mix_minus_real_auroc": ("utility", "real-test AUROC of real+synthetic minus real only (worst ratio, full size)"),
    "pretrain_minus_real_auroc": ("utility", "real-test AUROC of synthetic pre-training + real fine-tuning minus real only"),
}
JUDGE_ON = ("point", "ci_low", "ci_high")
UTILITY_MODES = ("probe", "finetune", "scratch")


@dataclass(frozen=True)
class Criterion:
    """A threshold on one measured quantity for one class: ``value >= minimum``.

    ``judge`` says which number must clear it: the point estimate, the lower CI
    bound (strict: confidently above) or the upper CI bound (lenient: not
    confidently below).
    """

    name: str
    class_name: str
    minimum: float
    judge: str

    @property
    def family(self) -> str:
        return CRITERIA[self.name][0]


@dataclass(frozen=True)
class UtilitySpec:
    """The retraining grid: learner mode, synthetic:real ratios, real-data sizes, seeds."""

    mode: str = "probe"
    ratios: tuple[float, ...] = (1.0, 2.0, 3.0)
    sizes: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 10  # finetune / scratch modes only


@dataclass(frozen=True)
class DistributionSpec:
    """Thresholds of the distribution checks, each relative to a real-vs-real baseline where it can be."""

    frechet_ratio_max: float = 4.0  # FD(synthetic, real) / FD(real half, real half)
    detectability_auroc_max: float = 0.75  # classifier two-sample test; 0.5 = indistinguishable
    duplicate_fraction_max: float = 0.05  # synthetic images with a near-duplicate among the synthetic ones
    duplicate_similarity: float = 0.95  # pixel similarity that makes two images near-duplicates
    max_shift: int = 4  # pixels (at 64 px) a near-duplicate may be moved by


@dataclass(frozen=True)
class PrivacySpec:
    pixel_similarity_max: float = 0.95  # a synthetic image more similar than this to a real one is a copy
    max_shift: int = 4


@dataclass(frozen=True)
class StatisticsSpec:
    n_boot: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class ManifestRow:
    line: int
    path: str
    labels: dict[str, str]
    patient_id: str | None


@dataclass(frozen=True)
class Manifest:
    """The manifest as written: every row and column kept, valid or not."""

    file: Path
    columns: tuple[str, ...]
    rows: tuple[ManifestRow, ...]

    @property
    def label_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c != MANIFEST_PATH_COLUMN and c not in MANIFEST_INFO_COLUMNS)


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
    integrity: IntegritySpec
    criteria: tuple[Criterion, ...]
    utility: UtilitySpec
    statistics: StatisticsSpec
    distribution: DistributionSpec
    privacy: PrivacySpec
    manifest: Manifest
    raw_config: dict = field(repr=False, compare=False)

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
    description = about.get("description", str, "")
    generator = about.get("generator", str)
    source_datasets = tuple(about.get_list("source_datasets", str))
    if not source_datasets:
        raise about.error("source_datasets", "list the data sets the generator learned from (needed for leakage checks)")
    source_images = _data_ref(about.table("source_images", None), root, source_datasets)
    about.finish()

    images_table = top.table("images")
    images = ImageSpec(
        width=_positive(images_table, "width"),
        height=_positive(images_table, "height"),
        mode=images_table.get("mode", str, choices=IMAGE_MODES),
    )
    manifest_file = images_table.path("manifest", root, "manifest.csv")
    images_table.finish()

    classes = _classes(top.table("classes"))
    reference = _reference(top.table("reference", None), root)
    model = top.get("model", dict, {})
    integrity = _integrity(top.table("integrity", {}))
    criteria = _criteria(top.table("criteria", {}), {c.name for c in classes})
    utility = _utility(top.table("utility", {}))
    statistics = _statistics(top.table("statistics", {}))
    distribution = _simple_spec(DistributionSpec, top.table("distribution", {}))
    privacy = _simple_spec(PrivacySpec, top.table("privacy", {}))
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
        integrity=integrity,
        criteria=criteria,
        utility=utility,
        statistics=statistics,
        distribution=distribution,
        privacy=privacy,
        manifest=read_manifest(manifest_file),
        raw_config=raw,
    )


def _positive(table: Table, key: str) -> int:
    value = table.get(key, int)
    if value <= 0:
        raise table.error(key, f"must be a positive integer, got {value}")
    return value


def _classes(table: Table) -> tuple[ClassSpec, ...]:
    classes = []
    for name in list(table.data):
        spec = table.table(name)
        min_count = spec.get("min_count", int, 1)
        if min_count < 0:
            raise spec.error("min_count", "must be >= 0")
        classes.append(ClassSpec(name, spec.get("model_output", str), min_count))
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


def _integrity(table: Table) -> IntegritySpec:
    spec = IntegritySpec(
        blank_std=table.get("blank_std", float, IntegritySpec.blank_std),
        near_duplicate_bits=table.get("near_duplicate_bits", int, IntegritySpec.near_duplicate_bits),
    )
    table.finish()
    return spec


def _criteria(table: Table, class_names: set[str]) -> tuple[Criterion, ...]:
    """``[criteria."soft tissue mass"] pretrained_auroc = 0.8`` or ``= { min = 0.8, judge = "ci_low" }``."""
    default_judge = table.get("judge", str, "point", choices=JUDGE_ON)
    criteria = []
    for class_name in [key for key in table.data if key != "judge"]:
        if class_name not in class_names:
            raise table.error(class_name, f"not a declared class ({', '.join(sorted(class_names))})")
        per_class = table.table(class_name)
        for name in list(per_class.data):
            if name not in CRITERIA:
                per_class.finish_with(CRITERIA)
            value = per_class.get(name, (float, dict))
            if isinstance(value, dict):
                spec = per_class.table(name)
                minimum, judge = spec.get("min", float), spec.get("judge", str, default_judge, choices=JUDGE_ON)
                spec.finish()
            else:
                minimum, judge = value, default_judge
            criteria.append(Criterion(name, class_name, minimum, judge))
    table.finish()
    return tuple(criteria)


def _utility(table: Table) -> UtilitySpec:
    defaults = UtilitySpec()
    spec = UtilitySpec(
        mode=table.get("mode", str, defaults.mode, choices=UTILITY_MODES),
        ratios=tuple(float(v) for v in table.get_list("ratios", (int, float), list(defaults.ratios))),
        sizes=tuple(float(v) for v in table.get_list("sizes", (int, float), list(defaults.sizes))),
        seeds=tuple(table.get_list("seeds", int, list(defaults.seeds))),
        epochs=table.get("epochs", int, defaults.epochs),
    )
    if not spec.seeds:
        raise table.error("seeds", "give at least one seed")
    if any(not 0 < size <= 1 for size in spec.sizes) or not spec.sizes:
        raise table.error("sizes", f"fractions of the real training set in (0, 1], got {list(spec.sizes)}")
    if any(ratio <= 0 for ratio in spec.ratios):
        raise table.error("ratios", f"synthetic:real ratios must be positive, got {list(spec.ratios)}")
    table.finish()
    return spec


def _simple_spec(kind, table: Table):
    """A spec dataclass of numbers, each key optional with the dataclass default."""
    values = {f.name: table.get(f.name, float if f.type == "float" else int, f.default) for f in fields(kind)}
    for key, value in values.items():
        if value < 0:
            raise table.error(key, f"must be >= 0, got {value}")
    table.finish()
    return kind(**values)


def _statistics(table: Table) -> StatisticsSpec:
    spec = StatisticsSpec(n_boot=table.get("n_boot", int, 1000), seed=table.get("seed", int, 0))
    if spec.n_boot < 100:
        raise table.error("n_boot", "use at least 100 bootstrap replicates")
    table.finish()
    return spec


def read_manifest(path: Path) -> Manifest:
    """Parse a manifest CSV; a missing file, no header or no ``path`` column is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "", "manifest file not found") from None
    except UnicodeDecodeError as error:
        raise ConfigError(path, "", f"manifest is not UTF-8 text ({error.reason} at byte {error.start})") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise ConfigError(path, "", "manifest is empty: it needs a header row with a 'path' column")
    header = [column.strip() for column in header]
    if MANIFEST_PATH_COLUMN not in header:
        raise ConfigError(path, "", f"manifest header has no 'path' column (found {header})")
    if len(set(header)) != len(header):
        raise ConfigError(path, "", f"manifest header repeats a column: {header}")
    rows = []
    for line, values in enumerate(reader, start=2):
        if not values:
            continue
        if len(values) != len(header):
            raise ConfigError(path, f"line {line}", f"has {len(values)} fields, the header has {len(header)}")
        record = dict(zip(header, (v.strip() for v in values)))
        labels = {k: v for k, v in record.items() if k != MANIFEST_PATH_COLUMN and k not in MANIFEST_INFO_COLUMNS}
        rows.append(ManifestRow(line, record[MANIFEST_PATH_COLUMN], labels, record.get("patient_id") or None))
    return Manifest(file=path, columns=tuple(header), rows=tuple(rows))


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


def release_files(release: Release) -> list[str]:
    """Every file in the release folder other than its config, manifest and clearance record."""
    skip = {release.config_file, release.manifest.file, release.root / CLEARANCE_NAME}
    found = []
    for directory, _, names in os.walk(release.root):
        for name in names:
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
