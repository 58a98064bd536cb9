"""The model card: what an evaluating model is and what it was trained on.

Why: the gate must refuse to judge a synthetic release with a model that saw the
release's source images, and must know which outputs a model has; both are read
from the card, before (and without) loading any weights.  This module owns the
card's schema (every key checked on construction and on load, so a malformed card
fails with the file and key named), its JSON file beside a checkpoint
(``<checkpoint>.card.json``, written atomically) and the library versions it records.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthgate.models.errors import ModelCardError
from synthgate.storage import atomic_write

ARCHITECTURE = "densenet121-xrv"
NORMALISATION = "xrv [-1024,1024]"
CARD_SUFFIX = ".card.json"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_metrics(value: object) -> bool:
    """Numbers, possibly grouped (e.g. per-class AUROC) under string keys."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_metrics(v) for k, v in value.items())
    return _is_int(value) or isinstance(value, float)


_CARD_CHECKS: dict[str, tuple[str, Any]] = {
    "model_id": ("a non-empty string", lambda v: isinstance(v, str) and bool(v)),
    "architecture": ("a string", lambda v: isinstance(v, str)),
    "training_datasets": (
        "a non-empty list of data-set names",
        lambda v: _is_str_list(v) and bool(v) and all(v),
    ),
    "training_fingerprint": (
        "null or a 64-character lower-case hex sha256",
        lambda v: v is None or (isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v)),
    ),
    "outputs": ("a non-empty list of strings ('' = untrained)", lambda v: _is_str_list(v) and bool(v)),
    "input_size": ("a positive integer", lambda v: _is_int(v) and v > 0),
    "normalisation": ("a string", lambda v: isinstance(v, str)),
    "validation_metrics": ("an object of numbers (nesting allowed)", lambda v: isinstance(v, dict) and _is_metrics(v)),
    "seed": ("null or an integer", lambda v: v is None or _is_int(v)),
    "library_versions": (
        "an object of strings",
        lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in (*v, *v.values())),
    ),
    "source": ("a non-empty string", lambda v: isinstance(v, str) and bool(v)),
}


def _check_card_fields(values: Mapping[str, object], where: str) -> None:
    for key in values:
        if key not in _CARD_CHECKS:
            raise ModelCardError(f"{where}: unknown key {key!r} (expected: {', '.join(_CARD_CHECKS)})")
    for key, (expected, check) in _CARD_CHECKS.items():
        if key not in values:
            raise ModelCardError(f"{where}: missing key {key!r} ({expected})")
        if not check(values[key]):
            raise ModelCardError(f"{where}: key {key!r} must be {expected}, got {values[key]!r}")


@dataclass(frozen=True)
class ModelCard:
    """What a model is and what it was trained on; saved as ``<ckpt>.card.json``."""

    model_id: str
    architecture: str
    training_datasets: list[str]
    training_fingerprint: str | None
    outputs: list[str]
    input_size: int
    normalisation: str
    validation_metrics: dict
    seed: int | None
    library_versions: dict[str, str]
    source: str

    def __post_init__(self) -> None:
        _check_card_fields(dataclasses.asdict(self), "ModelCard")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    def save(self, path: Path | str) -> None:
        """Write the card to ``path`` atomically (readers never see half a card)."""
        atomic_write(Path(path), self.to_json().encode("utf-8"))

    @classmethod
    def load(cls, path: Path | str) -> ModelCard:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelCardError(f"{path}: model card not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelCardError(f"{path}: cannot read model card: {exc}") from None
        if not isinstance(data, dict):
            raise ModelCardError(f"{path}: a model card must be a JSON object, got {type(data).__name__}")
        _check_card_fields(data, str(path))
        return cls(**data)


def card_path(checkpoint: Path | str) -> Path:
    """The card file that belongs beside ``checkpoint``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + CARD_SUFFIX)


def current_library_versions() -> dict[str, str]:
    """Versions that determine how a model was built, for its card."""
    import torch

    from synthgate import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchxrayvision": importlib.metadata.version("torchxrayvision"),
        "synthgate": __version__,
    }
