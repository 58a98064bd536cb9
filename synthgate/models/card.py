"""The model card: what an evaluating model is and what it was trained on.

Why: the gate must refuse to judge a synthetic release with a model that saw the
release's source images, and must know which outputs a model has; both are read
from the card, before (and without) loading any weights.  This module owns the
card's schema (every key checked on construction and on load, so a malformed card
fails with the file and key named), its JSON file beside a checkpoint
(``<checkpoint>.card.json``, written atomically), the library versions it records,
and the list of images the model saw (``<checkpoint>.images.json``: file hash, decoded-pixel
hash and patient of every training and validation image), which the card names and
hashes so that leakage is checked image by image, not only by data-set name.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthgate.models.errors import ModelCardError
from synthgate.storage import atomic_write, sha256_bytes

ARCHITECTURE = "densenet121-xrv"
NORMALISATION = "xrv [-1024,1024]"
CARD_SUFFIX = ".card.json"
SEEN_IMAGES_SUFFIX = ".images.json"  # the list of images a checkpoint was trained on, beside its card
SEEN_IMAGES_FORMAT = "synthgate-seen-images/1"
SEEN_ROLES = ("train", "validation")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a plain file name beside the card: no folders, no '..'


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_hex64(value: object) -> bool:
    return isinstance(value, str) and bool(_HEX64.fullmatch(value))


def _is_seen_images_ref(value: object) -> bool:
    """``{"file": <name beside the card>, "sha256": <of that file>, "count": <images listed>}``."""
    return (
        isinstance(value, dict)
        and set(value) == {"file", "sha256", "count"}
        and isinstance(value["file"], str)
        and bool(_FILE_NAME.fullmatch(value["file"]))
        and _is_hex64(value["sha256"])
        and _is_int(value["count"])
        and value["count"] >= 0
    )


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
        lambda v: v is None or _is_hex64(v),
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
    "seen_images": (
        'null or {"file": a file name beside the card, "sha256": its 64-hex sha256, "count": images listed}',
        lambda v: v is None or _is_seen_images_ref(v),
    ),
}
_OPTIONAL_CARD_KEYS = {"seen_images": None}  # absent from cards written before it existed: read as null


def _check_card_fields(values: Mapping[str, object], where: str) -> None:
    for key in values:
        if key not in _CARD_CHECKS:
            raise ModelCardError(f"{where}: unknown key {key!r} (expected: {', '.join(_CARD_CHECKS)})")
    for key, (expected, check) in _CARD_CHECKS.items():
        if key not in values:
            if key in _OPTIONAL_CARD_KEYS:
                continue
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
    # The images the model saw (training and validation), listed in a sidecar JSON beside the
    # card that this names and hashes (see SeenImage); None when not recorded (published weights).
    seen_images: dict | None = None

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
        return cls(**{**_OPTIONAL_CARD_KEYS, **data})

    def load_seen_images(self, card_file: Path | str) -> tuple[SeenImage, ...] | None:
        """The images this card says the model saw (from the sidecar beside ``card_file``), or None if it lists none.

        The sidecar must be the very file the card names and hashes; anything else is a ModelCardError.
        """
        if self.seen_images is None:
            return None
        path = Path(card_file).parent / self.seen_images["file"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelCardError(f"{card_file}: the image list it names cannot be read: {exc}") from None
        if sha256_bytes(data) != self.seen_images["sha256"]:
            raise ModelCardError(f"{path}: does not match the sha256 its card {Path(card_file).name} records "
                                 "(changed or replaced since the model was trained)")
        images = parse_seen_images(data, str(path))
        if len(images) != self.seen_images["count"]:
            raise ModelCardError(f"{path}: lists {len(images)} images, its card says {self.seen_images['count']}")
        return images


def card_path(checkpoint: Path | str) -> Path:
    """The card file that belongs beside ``checkpoint``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + CARD_SUFFIX)


def seen_images_path(checkpoint: Path | str) -> Path:
    """The image list that belongs beside ``checkpoint`` (named and hashed by its card)."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + SEEN_IMAGES_SUFFIX)


# --------------------------------------------------------------------------- what a model saw, image by image


@dataclass(frozen=True)
class SeenImage:
    """One image a model was trained (or validated) on, as the leakage checks compare it.

    ``file_sha256`` is the sha256 of the file's bytes, ``pixel_sha256`` that of its decoded
    grey pixels (:func:`pixel_sha256`: the same picture re-encoded has other bytes, the
    same pixel hash), ``patient_id`` the patient where known, ``path`` where the file lay
    when the model was trained (to name it; its pixels are used only if it still has those bytes).
    """

    role: str
    file_sha256: str
    pixel_sha256: str | None = None
    patient_id: str | None = None
    path: str | None = None


_SEEN_CHECKS: dict[str, tuple[str, Any]] = {
    "role": (f"one of {', '.join(SEEN_ROLES)}", lambda v: v in SEEN_ROLES),
    "file_sha256": ("a 64-character lower-case hex sha256", _is_hex64),
    "pixel_sha256": ("null or a 64-character lower-case hex sha256", lambda v: v is None or _is_hex64(v)),
    "patient_id": ("null or a non-empty string", lambda v: v is None or (isinstance(v, str) and bool(v))),
    "path": ("null or a non-empty string", lambda v: v is None or (isinstance(v, str) and bool(v))),
}


def seen_images_json(images: Sequence[SeenImage]) -> bytes:
    """The sidecar's bytes (deterministic: the same images give the same sha256)."""
    entries = [dataclasses.asdict(image) for image in images]
    return (json.dumps({"format": SEEN_IMAGES_FORMAT, "images": entries}, indent=1, sort_keys=True) + "\n").encode()


def save_seen_images(images: Sequence[SeenImage], path: Path | str) -> dict:
    """Write the image list atomically; return the reference a card beside it records (``seen_images``)."""
    data = seen_images_json(images)
    atomic_write(Path(path), data)
    return {"file": Path(path).name, "sha256": sha256_bytes(data), "count": len(images)}


def parse_seen_images(data: bytes, where: str) -> tuple[SeenImage, ...]:
    """A sidecar's images, every key checked (plain JSON: nothing read may run code)."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelCardError(f"{where}: cannot read the image list: {exc}") from None
    if not isinstance(document, dict) or set(document) != {"format", "images"}:
        raise ModelCardError(f'{where}: an image list is a JSON object with keys "format" and "images"')
    if document["format"] != SEEN_IMAGES_FORMAT:
        raise ModelCardError(f"{where}: format {document['format']!r} is not {SEEN_IMAGES_FORMAT!r}")
    if not isinstance(document["images"], list):
        raise ModelCardError(f'{where}: "images" must be a list')
    images = []
    for k, entry in enumerate(document["images"]):
        place = f"{where}: images[{k}]"
        if not isinstance(entry, dict):
            raise ModelCardError(f"{place} must be an object")
        for key in entry:
            if key not in _SEEN_CHECKS:
                raise ModelCardError(f"{place}: unknown key {key!r} (expected: {', '.join(_SEEN_CHECKS)})")
        for key, (expected, check) in _SEEN_CHECKS.items():
            if key in ("role", "file_sha256") and key not in entry:
                raise ModelCardError(f"{place}: missing key {key!r} ({expected})")
            if not check(entry.get(key)):
                raise ModelCardError(f"{place}: key {key!r} must be {expected}, got {entry.get(key)!r}")
        images.append(SeenImage(**entry))
    return tuple(images)


def pixel_sha256(path: Path | str) -> str | None:
    """sha256 of an image's decoded grey pixels (with their shape and bit depth), or None if it does not decode.

    Equal for the same picture in any lossless encoding (PNG at another compression level, an
    RGB file whose channels are equal, a 16-bit file that is an 8-bit one scaled by 257).
    """
    import numpy as np

    from synthgate.data.imaging import open_image, to_grey_array

    try:
        with open_image(path) as image:
            grey, _ = to_grey_array(image)
    except (OSError, ValueError):  # ImageDecodeError (a ValueError), an unreadable file, a colour image
        return None
    grey = np.asarray(grey)
    if grey.dtype == np.uint16 and not (grey % 257).any():
        grey = (grey // 257).astype(np.uint8)  # an 8-bit picture stored in 16 bits is the same picture
    grey = np.ascontiguousarray(grey, dtype=grey.dtype.newbyteorder("<"))
    header = f"{grey.dtype.str}|{grey.shape[0]}x{grey.shape[1]}|".encode()
    return sha256_bytes(header + grey.tobytes())


def current_library_versions() -> dict[str, str]:
    """Versions that determine how a model was built, for its card (read without importing torch)."""
    from synthgate import __version__

    return {
        "python": platform.python_version(),
        "torch": importlib.metadata.version("torch"),
        "torchxrayvision": importlib.metadata.version("torchxrayvision"),
        "synthgate": __version__,
    }
