"""Training DenseNet121 (torchxrayvision's architecture) on labelled images.

Used for the leakage-free reference model, and for the fine-tune / from-scratch
modes of the utility experiments. Fixed seed, validation split by patient, early
stopping on validation AUROC, bf16 autocast + channels_last where measured faster.
A model trained here records what it saw, image by image (:func:`seen_images`: file
hash, decoded-pixel hash, patient), in a list beside its checkpoint that its card
names and hashes, so that leakage is checked on images, not only on data-set names.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupShuffleSplit
from torch.utils.data import DataLoader

from synthgate.config.toml import Table
from synthgate.data.collection import Collection
from synthgate.models.card import (
    ARCHITECTURE,
    NORMALISATION,
    ModelCard,
    SeenImage,
    current_library_versions,
    pixel_sha256,
    save_seen_images,
    seen_images_path,
)
from synthgate.models.embedding import ImageFiles, forward_features
from synthgate.models.loading import LoadedModel, build_densenet, load_checkpoint, save_checkpoint
from synthgate.progress import step
from synthgate.storage import exclusive


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


@dataclass
class TrainResult:
    model: torch.nn.Module
    best_epoch: int
    validation_auroc: dict[str, float]
    history: list[dict]


def decode_all(collection: Collection, size: int) -> torch.Tensor:
    """Every image of the collection as one (n, 1, size, size) tensor in xrv range."""
    loader = DataLoader(ImageFiles(collection.paths, size), batch_size=256)  # decoding is not the bottleneck (see embed)
    return torch.cat(list(loader)) if len(collection) else torch.zeros((0, 1, size, size))


def patient_split(collection: Collection, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train / validation indices with no patient on both sides."""
    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    train, val = next(splitter.split(np.zeros(len(collection)), groups=np.asarray(collection.groups)))
    return train, val


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


def _shift(batch: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Random translation of each image by up to ``fraction`` of its size (edge-padded)."""
    if fraction <= 0:
        return batch
    size = batch.shape[-1]
    pad = max(1, int(round(size * fraction)))
    padded = F.pad(batch, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (len(batch), 2), generator=generator)
    return torch.stack([padded[i, :, y : y + size, x : x + size] for i, (y, x) in enumerate(offsets.tolist())])


def _auroc_per_output(labels: np.ndarray, scores: np.ndarray, outputs) -> dict[str, float]:
    result = {}
    for k, name in enumerate(outputs):
        column = labels[:, k]
        result[name] = float(roc_auc_score(column, scores[:, k])) if 0 < column.sum() < len(column) else float("nan")
    return result


@torch.inference_mode()
def predict(model: torch.nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 128) -> np.ndarray:
    model.eval()
    scores = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            scores.append(forward_features(model, batch)[1].float().cpu().numpy())
    return np.concatenate(scores)


def train_densenet(
    collection: Collection,
    settings: TrainSettings,
    device: torch.device,
    init: torch.nn.Module | None = None,
    outputs: tuple[str, ...] | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train on ``collection`` (all its label columns, or ``outputs``) and keep the best validation epoch.

    ``on_epoch(1)`` is called after each epoch (progress of a long training).
    """
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    outputs = outputs or collection.classes
    labels = np.stack([collection.column(name) for name in outputs], axis=1).astype(np.float32)
    images = decode_all(collection, settings.size)
    train_index, val_index = held_out_split(collection, settings)

    model = build_densenet(len(outputs)) if init is None else _with_head(init, len(outputs))
    model = model.to(device).to(memory_format=torch.channels_last)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=settings.epochs)
    targets = torch.from_numpy(labels)

    best_state, best_score, best_epoch, history = None, -np.inf, 0, []
    for epoch in range(settings.epochs):
        model.train()
        order = torch.from_numpy(train_index)[torch.randperm(len(train_index), generator=generator)]
        losses = []
        for start in range(0, len(order), settings.batch_size):
            index = order[start : start + settings.batch_size]
            if len(index) < 2:  # BatchNorm needs more than one sample
                continue
            batch = _shift(images[index], settings.shift, generator).to(device).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                logits = model.classifier(F.adaptive_avg_pool2d(F.relu(model.features(batch)), 1).flatten(1))
            loss = F.binary_cross_entropy_with_logits(logits.float(), targets[index].to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        schedule.step()
        val_auroc = _auroc_per_output(labels[val_index], predict(model, images[val_index], device), outputs)
        score = float(np.nanmean(list(val_auroc.values())))
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_auroc": score})
        if on_epoch is not None:
            on_epoch(1)
        if score > best_score:
            best_state, best_score, best_epoch = copy.deepcopy(model.state_dict()), score, epoch + 1
            best_val = val_auroc
        elif epoch + 1 - best_epoch >= settings.patience:
            break
    model.load_state_dict(best_state)
    return TrainResult(model.eval().to(memory_format=torch.contiguous_format), best_epoch, best_val, history)


def _with_head(init: torch.nn.Module, outputs: int) -> torch.nn.Module:
    """A copy of ``init`` with a fresh classifier for ``outputs`` classes (fine-tuning)."""
    model = copy.deepcopy(init)
    model.classifier = torch.nn.Linear(model.classifier.in_features, outputs)
    return model


# --------------------------------------------------------------------------- the reference model

TRAIN_DATA = ("reference", "source")


@dataclass(frozen=True)
class ReferenceModelSpec:
    """``[model] train = "reference"``: synthgate trains its own DenseNet121 the first time, then reuses it."""

    data: str
    settings: TrainSettings

    @classmethod
    def from_table(cls, table: Table) -> ReferenceModelSpec:
        data = table.get("train", str, choices=TRAIN_DATA)
        defaults = TrainSettings()
        settings = TrainSettings(
            size=table.get("size", int, defaults.size),
            epochs=table.get("epochs", int, defaults.epochs),
            patience=table.get("patience", int, defaults.patience),
            seed=table.get("seed", int, defaults.seed),
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


def reference_checkpoint(collection: Collection, outputs: tuple[str, ...], settings: TrainSettings,
                         cache_dir: Path) -> Path:
    """Where ``trained_model`` keeps the model of (images, outputs, settings, training code), trained or not yet."""
    key = hashlib.sha256(
        json.dumps(
            [collection.fingerprint, list(outputs), list(collection.classes), settings.as_dict(),
             hashlib.sha256(Path(__file__).read_bytes()).hexdigest()]
        ).encode()
    ).hexdigest()[:16]
    return Path(cache_dir) / "models" / key / "densenet121.pt"


def trained_model(
    collection: Collection,
    outputs: tuple[str, ...],
    settings: TrainSettings,
    cache_dir: Path,
    device: torch.device,
) -> LoadedModel:
    """Train on ``collection`` once per (images, outputs, settings, training code); reuse the checkpoint after.

    Beside the checkpoint lie its card and the list of every image it saw (named and
    hashed by the card), written before the card so that a card never names a missing list.
    """
    checkpoint = reference_checkpoint(collection, outputs, settings, cache_dir)
    with exclusive(checkpoint.parent.with_suffix(".lock")):  # parallel runs train it once
        if not checkpoint.exists():
            what = f"training the reference DenseNet121 on {collection.name} ({len(collection)} images, {settings.size} px)"
            with step(what, total=settings.epochs, unit="epoch") as progress:
                result = train_densenet(collection, settings, device, on_epoch=progress.advance)
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            seen = save_seen_images(seen_images(collection, settings), seen_images_path(checkpoint))
            card = dataclasses.replace(
                planned_card(collection, outputs, settings),
                validation_metrics={"auroc": result.validation_auroc, "best_epoch": result.best_epoch},
                seen_images=seen,
            )
            save_checkpoint(result.model, card, checkpoint)
    return load_checkpoint(checkpoint)
