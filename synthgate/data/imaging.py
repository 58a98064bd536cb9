"""Decoding and inspecting image files with Pillow.

Every image is decoded to a float array in torchxrayvision's range [-1024, 1024]
from its true bit depth: 16-bit files are rescaled from 65535, never clipped
(Pillow's ``convert("L")`` clips them), and RGB files must be grey (equal channels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

XRV_RANGE = 1024.0
# Keys Pillow puts in ``Image.info`` for embedded text or metadata blocks that may carry patient data.
METADATA_KEYS = ("exif", "comment", "xmp", "XML:com.adobe.xmp", "icc_profile", "dicom")


class ImageDecodeError(ValueError):
    """A file that is not a readable image, with the file and the reason."""

    def __init__(self, source, reason: str):
        self.reason = reason
        super().__init__(f"{source}: {reason}")


@dataclass(frozen=True)
class ImageFacts:
    """What inspection learned about one image file."""

    width: int
    height: int
    mode: str
    bit_depth: int
    std: float
    dhash: int
    metadata: tuple[str, ...]


def bit_depth_of(image: Image.Image) -> int:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return 16
    if image.mode == "F":
        return 32
    if image.mode == "1":
        return 1
    return 8


def open_image(path) -> Image.Image:
    """Open and fully decode an image, raising ImageDecodeError naming the file and the reason."""
    try:
        image = Image.open(path)
        image.load()  # decodes every byte: truncated or corrupt data fails here, not later
        return image
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        reason = str(error) or type(error).__name__
        if isinstance(error, UnidentifiedImageError):
            reason = "not a recognised image format (corrupt or not an image)"
        raise ImageDecodeError(path, reason) from None


def to_grey_array(image: Image.Image) -> tuple[np.ndarray, float]:
    """A 2-D array of the image's grey values and the maximum value of its bit depth."""
    if image.mode == "RGB":
        rgb = np.asarray(image)
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise ValueError("RGB image with colour: chest X-rays must be grey")
        return rgb[..., 0], 255.0
    if image.mode == "L":
        return np.asarray(image), 255.0
    if bit_depth_of(image) == 16:
        return np.asarray(image, dtype=np.int32).astype(np.uint16), 65535.0
    raise ValueError(f"unsupported image mode {image.mode!r}")


def to_xrv(array: np.ndarray, max_value: float) -> np.ndarray:
    """Map [0, max_value] to torchxrayvision's [-1024, 1024] as float32."""
    return (array.astype(np.float32) / max_value * (2 * XRV_RANGE) - XRV_RANGE).astype(np.float32)


def difference_hash(grey: np.ndarray, size: int = 8) -> int:
    """64-bit dHash: robust to small intensity and resampling changes, for near-duplicate search."""
    small = Image.fromarray(grey.astype(np.float32)).resize((size + 1, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(small)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def inspect(image: Image.Image) -> ImageFacts:
    """Facts for the integrity checks (size, mode, depth, contrast, hash, embedded metadata)."""
    try:
        grey, _ = to_grey_array(image)
    except ValueError:
        grey = np.asarray(image.convert("L"))
    metadata = [key for key in METADATA_KEYS if image.info.get(key)]
    metadata += [f"text:{key}" for key in getattr(image, "text", {}) or {}]
    return ImageFacts(
        width=image.width,
        height=image.height,
        mode=image.mode,
        bit_depth=bit_depth_of(image),
        std=float(grey.std()),
        dhash=difference_hash(grey),
        metadata=tuple(metadata),
    )


def load_xrv(path, size: int | None = None) -> np.ndarray:
    """Decode a file to a (1, H, W) float32 array in xrv range, optionally resized to ``size``."""
    grey, max_value = to_grey_array(open_image(path))
    if size is not None and grey.shape != (size, size):
        resized = Image.fromarray(grey.astype(np.float32)).resize((size, size), Image.Resampling.BILINEAR)
        grey = np.asarray(resized)
    return to_xrv(grey, max_value)[None]

