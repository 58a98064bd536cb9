"""Loading the evaluating model: DenseNet121 in torchxrayvision's form, with its card.

Every model synthgate evaluates with is ``xrv.models.DenseNet`` (one input
channel, pixels in [-1024, 1024]).  It comes either from torchxrayvision's
published weights (``{"xrv": "nih"}``, see :mod:`synthgate.models.weights`) or
from a checkpoint synthgate trained itself (``{"checkpoint": path}``, a plain
state dict with a ``.card.json`` beside it, see :mod:`synthgate.models.card`).
This module owns the spec that names the model (``[model]`` in release.toml),
the loaded model with its card and cache id, and saving / loading checkpoints;
files are read only through :mod:`synthgate.models.safe_load`, so nothing read
from disk may run code.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from synthgate.models.card import ARCHITECTURE, ModelCard, card_path
from synthgate.models.compat import import_xrv
from synthgate.models.errors import ModelCardError, ModelLoadError, ModelSpecError, WeightsNotFoundError
from synthgate.models.plan import ModelSpec, checkpoint_model_id, xrv_model_id
from synthgate.models.safe_load import load_state, module_state, safe_torch_load, xrv_module_classes
from synthgate.models.weights import (
    WEIGHTS_DIR_ENV,
    XRV_TARGETS,
    default_weights_dir,
    weights_filename,
    xrv_card,
    xrv_entry,
)
from synthgate.storage import atomic_write

__all__ = [
    "LoadedModel",
    "ModelCardError",
    "ModelLoadError",
    "ModelSpecError",
    "WeightsNotFoundError",
    "build_densenet",
    "load_checkpoint",
    "load_model",
    "load_xrv_weights",
    "save_checkpoint",
]


def build_densenet(num_classes: int) -> torch.nn.Module:
    """A freshly initialised torchxrayvision DenseNet121 (1 input channel)."""
    return import_xrv().models.DenseNet(num_classes=num_classes, in_channels=1)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to evaluate: eval mode, on CPU, returning raw logits."""

    module: torch.nn.Module
    card: ModelCard
    outputs: list[str]  # one name per output column; '' = untrained
    model_id: str  # cache key: changes whenever the weight file does


def load_xrv_weights(name: str, weights_dir: Path | str | None = None) -> LoadedModel:
    """Load torchxrayvision's published weights ``name`` from ``weights_dir``.

    Unlike ``xrv.models.DenseNet(weights=...)`` this never downloads, never
    unpickles arbitrary code, and does not set xrv's ``op_threshs``
    calibration or ``input_resolution`` auto-resizing: the module returns
    logits for images already at ``card.input_size``.
    """
    entry = xrv_entry(name)
    directory = Path(weights_dir).expanduser() if weights_dir is not None else default_weights_dir()
    path = directory / weights_filename(name)
    if not path.is_file():
        raise WeightsNotFoundError(
            f"torchxrayvision weights {name!r} not found: no file {path.name} in {directory}. "
            f"synthgate never downloads; on a machine with internet fetch {entry.weights_url} "
            f"and copy it into {directory} (or point weights_dir / ${WEIGHTS_DIR_ENV} at its folder)."
        )
    obj = safe_torch_load(path, xrv_module_classes())
    if isinstance(obj, torch.nn.Module):
        state = module_state(obj, path)
    elif isinstance(obj, Mapping):
        state = obj
    else:
        raise ModelLoadError(f"{path}: expected a pickled torchxrayvision DenseNet, found {type(obj).__name__}")
    model = build_densenet(len(XRV_TARGETS))
    load_state(model, state, path)
    card = xrv_card(name, xrv_model_id(name, path))
    return LoadedModel(model.eval(), card, list(card.outputs), card.model_id)


def save_checkpoint(model: torch.nn.Module, card: ModelCard, path: Path | str) -> ModelCard:
    """Save ``model``'s state dict to ``path`` and its card beside it.

    The card is stored with ``model_id`` set to the checkpoint's cache id, so a
    card copied next to other weights is caught at load time.  Returns that card.
    """
    path = Path(path)
    if card.architecture != ARCHITECTURE:
        raise ValueError(f"card architecture {card.architecture!r} is not {ARCHITECTURE!r}")
    if model.classifier.out_features != len(card.outputs):
        raise ValueError(
            f"model has {model.classifier.out_features} outputs but the card names {len(card.outputs)}"
        )
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    atomic_write(path, buffer.getvalue())
    saved = dataclasses.replace(card, model_id=checkpoint_model_id(path))
    saved.save(card_path(path))
    return saved


def load_checkpoint(path: Path | str) -> LoadedModel:
    """Load a synthgate checkpoint (plain state dict) and the card beside it."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"checkpoint not found: {path}")
    card_file = card_path(path)
    if not card_file.is_file():
        raise ModelCardError(
            f"{path}: no model card at {card_file}; synthgate checkpoints are written "
            "with synthgate.models.loading.save_checkpoint, which puts the card beside them"
        )
    card = ModelCard.load(card_file)
    if card.architecture != ARCHITECTURE:
        raise ModelCardError(f"{card_file}: architecture {card.architecture!r} is not {ARCHITECTURE!r}")
    model_id = checkpoint_model_id(path)
    if card.model_id.startswith("ckpt:") and card.model_id != model_id:
        raise ModelCardError(
            f"{card_file}: card is for {card.model_id} but {path.name} is {model_id}; "
            "the card belongs to a different checkpoint"
        )
    state = safe_torch_load(path, [])
    if not isinstance(state, Mapping):
        raise ModelLoadError(f"{path}: expected a state dict, found {type(state).__name__}")
    model = build_densenet(len(card.outputs))
    load_state(model, state, path)
    return LoadedModel(model.eval(), card, list(card.outputs), model_id)


def load_model(spec: ModelSpec | Mapping[str, object]) -> LoadedModel:
    """Load the model a spec names (a mapping is read relative to the cwd)."""
    if not isinstance(spec, ModelSpec):
        spec = ModelSpec.from_config(spec, Path.cwd())
    if spec.xrv is not None:
        return load_xrv_weights(spec.xrv, spec.weights_dir)
    return load_checkpoint(spec.checkpoint)
