"""Batched inference: penultimate features and per-output probabilities, cached on disk.

The cache is keyed by (model id, preprocessing, image content hash): an image that
was already run through a model is never run again, whichever release or
collection it comes back in. Each extraction appends one shard, written atomically.
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from synthgate.data.imaging import load_xrv
from synthgate.progress import step

FEATURE_DIM = 1024
# Decoding runs at ~3,600 PNGs/s on one core, far ahead of the network on a CPU, where
# worker processes only compete with torch's threads (bench/results/extraction-cpu.json):
# decode in workers only when the network runs on a GPU and the set is large enough.
MIN_IMAGES_FOR_WORKERS = 512


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_precision(device: torch.device) -> str:
    """bf16 autocast on GPUs, where scores were measured to stay within tolerance (bench/); fp32 on CPU."""
    return "bf16" if device.type == "cuda" else "fp32"


@dataclass(frozen=True)
class Embeddings:
    features: np.ndarray  # (n, 1024) float32
    scores: np.ndarray  # (n, outputs) float32 probabilities


class ImageFiles(Dataset):
    def __init__(self, paths, size: int):
        self.paths, self.size = list(paths), size

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return torch.from_numpy(load_xrv(self.paths[index], self.size))


def forward_features(model: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled DenseNet features and sigmoid scores, at the batch's own resolution.

    torchxrayvision's ``forward`` resizes every input to 224 px and applies its
    operating-point normalisation; the gate wants raw probabilities at the model's
    trained resolution, so it goes through the layers directly.
    """
    maps = F.relu(model.features(batch))
    pooled = F.adaptive_avg_pool2d(maps, 1).flatten(1)
    return pooled, torch.sigmoid(model.classifier(pooled))


@torch.inference_mode()
def run_model(model, paths, size: int, device: torch.device, precision: str, batch_size: int = 64,
              on_batch: Callable[[int], None] | None = None) -> Embeddings:
    """Decode in DataLoader workers and run the network in batches (``on_batch(n)`` after each)."""
    workers = min(4, os.cpu_count() or 1) if device.type == "cuda" and len(paths) >= MIN_IMAGES_FOR_WORKERS else 0
    loader = DataLoader(ImageFiles(paths, size), batch_size=batch_size, num_workers=workers, pin_memory=device.type == "cuda")
    model = model.to(device).eval()
    if precision == "bf16":
        model = model.to(memory_format=torch.channels_last)
    features, scores = [], []
    for batch in loader:
        batch = batch.to(device, non_blocking=True)
        if precision == "bf16":
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            pooled, probs = forward_features(model, batch)
        features.append(pooled.float().cpu().numpy())
        scores.append(probs.float().cpu().numpy())
        if on_batch is not None:
            on_batch(len(batch))
    outputs = model.classifier.out_features
    return Embeddings(
        features=np.concatenate(features) if features else np.zeros((0, FEATURE_DIM), np.float32),
        scores=np.concatenate(scores) if scores else np.zeros((0, outputs), np.float32),
    )


class FeatureCache:
    """Shards of (digests, features, scores) under ``root/<model id>/<preprocessing>/``."""

    def __init__(self, root: Path, model_id: str, preprocessing: str):
        self.folder = Path(root) / "features" / model_id.replace(":", "_") / preprocessing
        self._index: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

    def _load(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if self._index is None:
            self._index = {}
            for shard in sorted(self.folder.glob("*.npz")):
                try:
                    with np.load(shard) as data:  # zip members carry a CRC: a damaged shard fails to read
                        digests, features, scores = data["digests"], data["features"], data["scores"]
                    if not len(digests) == len(features) == len(scores):
                        raise ValueError("arrays of different lengths")
                except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
                    warnings.warn(f"{shard}: damaged feature cache entry ({error}); removed, its images are computed again",
                                  stacklevel=2)
                    shard.unlink(missing_ok=True)
                    continue
                for digest, feature, score in zip(digests, features, scores):
                    self._index[str(digest)] = (feature, score)
        return self._index

    def missing(self, digests) -> list[str]:
        index = self._load()
        return sorted({d for d in digests if d not in index})

    def add(self, digests: list[str], embeddings: Embeddings) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(suffix=".npz.tmp", dir=self.folder)
        with os.fdopen(handle, "wb") as out:
            np.savez(out, digests=np.array(digests), features=embeddings.features, scores=embeddings.scores)
        os.replace(temporary, self.folder / f"{digests[0][:16]}-{len(digests)}.npz")
        index = self._load()
        for digest, feature, score in zip(digests, embeddings.features, embeddings.scores):
            index[digest] = (feature, score)

    def get(self, digests) -> Embeddings:
        index = self._load()
        return Embeddings(
            features=np.stack([index[d][0] for d in digests]).astype(np.float32),
            scores=np.stack([index[d][1] for d in digests]).astype(np.float32),
        )


@dataclass
class Extractor:
    """Features and scores for any image set under one model, computed once per image.

    ``load_model`` is called on the first image the cache lacks, so that a run whose
    images were all seen before never loads (or trains) the model.
    """

    load_model: Callable[[], torch.nn.Module]
    model_id: str
    size: int
    cache_root: Path
    device: torch.device
    precision: str
    forward_passes: int = 0  # images actually run through the network (the rest came from cache)

    @property
    def preprocessing(self) -> str:
        """The cache key of how images become inputs: xrv range, input size, area-averaged down, precision."""
        return f"xrv1024-{self.size}px-area-{self.precision}"

    def __call__(self, paths, digests) -> Embeddings:
        cache = FeatureCache(self.cache_root, self.model_id, self.preprocessing)
        todo = cache.missing(digests)
        if todo:
            first_path = {d: p for p, d in zip(paths, digests)}
            what = f"extracting features of {len(todo):,} images ({self.size} px, {self.device.type})"
            with step(what, total=len(todo)) as progress:
                computed = run_model(self.load_model(), [first_path[d] for d in todo], self.size, self.device,
                                     self.precision, on_batch=progress.advance)
            cache.add(todo, computed)
            self.forward_passes += len(todo)
        return cache.get(digests)
