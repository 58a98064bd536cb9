"""What ``[model]`` plans, known without loading torch: which weights, or which model to train on what.

The spec of published weights or a checkpoint (``ModelSpec``), the spec of a model
synthgate trains (``ReferenceModelSpec``, ``TrainSettings``), the patient-wise splits
that say which images such a model learns from and sees (``seen_images``), its card
before training and where its checkpoint is kept. A re-run of the gate reads every result from the cache and
needs only these, so they live apart from the modules that load and train networks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from synthgate.config.settings import RANGES, checked_number
from synthgate.config.toml import Table
from synthgate.data.collection import Collection
from synthgate.models.card import ARCHITECTURE, NORMALISATION, ModelCard, SeenImage, current_library_versions, pixel_sha256
from synthgate.models.errors import ModelSpecError
from synthgate.models.weights import xrv_entry
from synthgate.storage import sha256_file

TRAINING_CODE = Path(__file__).with_name("training.py")  # a change to how models are trained retrains them


def xrv_model_id(name: str, path: Path | str) -> str:
    """Cache id of torchxrayvision weights ``name`` stored at ``path``."""
    return f"xrv:{name}:{sha256_file(Path(path))[:16]}"


def checkpoint_model_id(path: Path | str) -> str:
    """Cache id of a synthgate checkpoint: changes whenever its bytes do."""
    return f"ckpt:{sha256_file(Path(path))[:16]}"


@dataclass(frozen=True)
class ModelSpec:
    """Which model to evaluate with: xrv weights by name, or a synthgate checkpoint."""

    xrv: str | None = None
    checkpoint: Path | None = None
    weights_dir: Path | None = None  # xrv only; None = caller's default / default_weights_dir()

    def __post_init__(self) -> None:
        if (self.xrv is None) == (self.checkpoint is None):
            raise ModelSpecError("a model spec needs exactly one of 'xrv' or 'checkpoint'")
        if self.xrv is not None:
            xrv_entry(self.xrv)
        elif self.weights_dir is not None:
            raise ModelSpecError("'weights_dir' applies only to 'xrv' weights, not to a 'checkpoint'")

    @classmethod
    def from_config(cls, table: Mapping[str, object], base_dir: Path) -> ModelSpec:
        """Build a spec from a config table; relative paths are taken from ``base_dir``."""
        fields = [f.name for f in dataclasses.fields(cls)]
        for key in table:
            if key not in fields:
                raise ModelSpecError(f"model spec: unknown key {key!r} (expected: {', '.join(fields)})")
        xrv = table.get("xrv")
        if xrv is not None and not isinstance(xrv, str):
            raise ModelSpecError(f"model spec: key 'xrv' must be a weights name, got {xrv!r}")

        def as_path(key: str) -> Path | None:
            value = table.get(key)
            if value is None:
                return None
            if not isinstance(value, (str, os.PathLike)) or not str(value):
                raise ModelSpecError(f"model spec: key {key!r} must be a path, got {value!r}")
            path = Path(value).expanduser()
            return path if path.is_absolute() else Path(base_dir) / path

        return cls(xrv=xrv, checkpoint=as_path("checkpoint"), weights_dir=as_path("weights_dir"))


GPU_INPUT_SIZE = 224  # the reference model's input on a GPU when [model] size is not given (torchxrayvision's)


@dataclass(frozen=True)
class TrainSettings:
    size: int = 64
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5
    val_fraction: float = 0.2
    seed: int = 0
    shift: float = 0.06  # random translation, as a fraction of the image, for augmentation

    def as_dict(self) -> dict:
        return asdict(self)


def patient_split(collection: Collection, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train / validation indices with no patient on both sides.

    The split scikit-learn's ``GroupShuffleSplit(test_size=fraction, random_state=seed)`` makes,
    written out (a unit test holds the two equal): a re-run of the gate needs this split to find
    its cached results, and importing scikit-learn would cost it more than a second.
    """
    patients, patient_of_image = np.unique(np.asarray(collection.groups), return_inverse=True)
    held_out = math.ceil(fraction * len(patients))
    if held_out >= len(patients):
        raise ValueError(f"{len(patients)} patients are too few to hold {fraction:.0%} of them out and train on the rest")
    held = np.isin(patient_of_image, np.random.RandomState(seed).permutation(len(patients))[:held_out])
    return np.flatnonzero(~held), np.flatnonzero(held)


# Share of the reference train's patients the reference model never sees: the retraining
# grid's real learner (R) draws from them, so that R, like S, learns from images new to
# the backbone whose features the probe uses (no home advantage for real data).
PROBE_POOL_FRACTION = 0.4


def backbone_split(collection: Collection, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(backbone, probe pool) indices of a reference train, patient-wise: the model trains on the first only."""
    return patient_split(collection, PROBE_POOL_FRACTION, seed)


def backbone_collection(reference_train: Collection, seed: int) -> Collection:
    """The part of a reference train the reference model learns from (``backbone_split``)."""
    return reference_train.subset(backbone_split(reference_train, seed)[0], f"{reference_train.name} (backbone part)")


def held_out_split(collection: Collection, settings: TrainSettings) -> tuple[np.ndarray, np.ndarray]:
    """The (train, validation) indices ``train_densenet`` uses for ``collection`` under ``settings``.

    Patient-wise; which patients are held out depends only on the set of
    patient ids, the fraction and the seed, not on the order of the rows.
    """
    return patient_split(collection, settings.val_fraction, settings.seed)


TRAIN_DATA = ("reference", "source")


@dataclass(frozen=True)
class ReferenceModelSpec:
    """``[model] train = "reference"``: synthgate trains its own DenseNet121 the first time, then reuses it."""

    data: str
    settings: TrainSettings

    @classmethod
    def from_table(cls, table: Table, on_gpu: bool = False) -> ReferenceModelSpec:
        """``size`` defaults to torchxrayvision's native 224 px where a GPU makes training at it affordable, else
        to 64 px (on a CPU a DenseNet121 runs about 25 times slower at 224 px: bench/results/extraction-cpu.json);
        the report says which."""
        data = table.get("train", str, choices=TRAIN_DATA)
        defaults = TrainSettings(size=GPU_INPUT_SIZE if on_gpu else TrainSettings.size)
        settings = TrainSettings(
            size=checked_number(table, "size", int, defaults.size, *RANGES["resolution"]),
            epochs=checked_number(table, "epochs", int, defaults.epochs, *RANGES["epochs"]),
            patience=checked_number(table, "patience", int, defaults.patience, *RANGES["epochs"]),
            seed=checked_number(table, "seed", int, defaults.seed, *RANGES["seed"]),
        )
        table.finish()
        return cls(data, settings)


def planned_card(collection: Collection, outputs: tuple[str, ...], settings: TrainSettings) -> ModelCard:
    """The card of a model trained on ``collection``: known before training, so leakage is checked first."""
    return ModelCard(
        model_id=f"planned:{collection.fingerprint[:16]}",
        architecture=ARCHITECTURE,
        training_datasets=list(collection.datasets),
        training_fingerprint=collection.fingerprint,
        outputs=list(outputs),
        input_size=settings.size,
        normalisation=NORMALISATION,
        validation_metrics={},
        seed=settings.seed,
        library_versions=current_library_versions(),
        source=f"synthgate train-reference on {collection.name}",
    )


def reference_checkpoint(collection: Collection, outputs: tuple[str, ...], settings: TrainSettings,
                         cache_dir: Path) -> Path:
    """Where ``trained_model`` keeps the model of (images, outputs, settings, training code), trained or not yet."""
    key = hashlib.sha256(
        json.dumps(
            [collection.fingerprint, list(outputs), list(collection.classes), settings.as_dict(),
             hashlib.sha256(TRAINING_CODE.read_bytes()).hexdigest()]
        ).encode()
    ).hexdigest()[:16]
    return Path(cache_dir) / "models" / key / "densenet121.pt"


def seen_images(collection: Collection, settings: TrainSettings,
                pixel_hashes: tuple[str | None, ...] | None = None) -> tuple[SeenImage, ...]:
    """Every image a model trained on ``collection`` under ``settings`` sees, in the collection's order.

    Its training and validation images (the patient-wise split ``train_densenet`` makes),
    each with its file hash, decoded-pixel hash (``pixel_hashes`` if already computed),
    patient id where the collection knows it, and path: what the card's sidecar lists.
    """
    try:
        held = {int(i) for i in held_out_split(collection, settings)[1]}
    except ValueError:  # too few patients to hold any out: train_densenet could not train on it either
        held = set()
    hashes = pixel_hashes if pixel_hashes is not None else tuple(pixel_sha256(p) for p in collection.paths)
    if len(hashes) != len(collection):
        raise ValueError(f"{len(hashes)} pixel hashes for {len(collection)} images")
    return tuple(
        SeenImage(
            role="validation" if k in held else "train",
            file_sha256=digest,
            pixel_sha256=pixel,
            patient_id=None if group.startswith("image:") else group,
            path=str(path),
        )
        for k, (digest, pixel, group, path) in enumerate(zip(collection.digests, hashes, collection.groups, collection.paths))
    )
