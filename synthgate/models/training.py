"""Training DenseNet121 (torchxrayvision's architecture) on labelled images.

Used for the leakage-free reference model, and for the fine-tune / from-scratch
modes of the utility experiments. Fixed seed, validation split by patient, early
stopping on validation AUROC, bf16 autocast + channels_last where measured faster.
A model trained here records what it saw, image by image (:func:`synthgate.models.plan.seen_images`: file
hash, decoded-pixel hash, patient), in a list beside its checkpoint that its card
names and hashes, so that leakage is checked on images, not only on data-set names.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader

from synthgate.data.collection import Collection
from synthgate.models.card import (
    save_seen_images,
    seen_images_path,
)
from synthgate.models.embedding import ImageFiles, forward_features
from synthgate.models.errors import ModelLoadError
from synthgate.models.loading import LoadedModel, build_densenet, load_checkpoint, save_checkpoint
from synthgate.models.plan import TrainSettings, held_out_split, planned_card, reference_checkpoint, seen_images
from synthgate.progress import step
from synthgate.storage import exclusive


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
        if checkpoint.exists():
            try:
                return load_checkpoint(checkpoint)
            except ModelLoadError as error:  # synthgate's own cache entry: damaged, it is trained again like any other
                warnings.warn(f"{checkpoint}: damaged cached model ({error}); removed, trained again", stacklevel=2)
                shutil.rmtree(checkpoint.parent)
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
