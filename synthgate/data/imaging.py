"""Decoding and inspecting image files with Pillow.

Every image is decoded to a float array in torchxrayvision's range [-1024, 1024]
from its true bit depth: 16-bit files are rescaled from 65535, never clipped
(Pillow's ``convert("L")`` clips them), and RGB files must be grey (equal channels).

Decoding untrusted files is guarded: only the formats in ``IMAGE_FORMATS`` are
tried (never plugins that shell out or guess from weak signatures), the size is
read from the header (Pillow opens lazily) and checked against ``max_pixels``
before a single pixel is decoded, and Pillow's own decompression-bomb guard is an
``ImageTooLarge`` like ours. Any failure is an ``ImageDecodeError`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from synthgate.data.collection import Collection

XRV_RANGE = 1024.0
# How an image larger than the model input is brought down to it: area averaging. Part of the
# feature cache key (models.embedding.Extractor.preprocessing): change both together.
RESAMPLING_DOWN = Image.Resampling.BOX
IMAGE_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP", "PPM", "JPEG2000")
COLOUR_MODES = {"RGB", "RGBA", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"}


class ImageDecodeError(ValueError):
    """A file that is not a readable image, with the file and the reason."""

    def __init__(self, source, reason: str):
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class ImageTooLarge(ImageDecodeError):
    """An image whose header claims more pixels than allowed; nothing was decoded.

    ``width``/``height`` are None when Pillow's bomb guard refused it before its size was known.
    """

    def __init__(self, source, reason: str, width: int | None = None, height: int | None = None):
        self.width, self.height = width, height
        super().__init__(source, reason)


@dataclass(frozen=True)
class ImageFacts:
    """What inspection learned about one image file."""

    width: int
    height: int
    mode: str
    bit_depth: int
    std: float  # of the grey values, in units of the image's own depth (0..max_value)
    dhash: int
    metadata: tuple[str, ...]
    max_value: float = 255.0
    colour: bool = False  # colour channels that differ (a chest X-ray must be grey)

    @property
    def std_8bit(self) -> float:
        """The pixel std in 8-bit grey levels, whatever the bit depth (16-bit std / 257)."""
        return self.std * 255.0 / self.max_value


def bit_depth_of(image: Image.Image) -> int:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return 16
    if image.mode == "F":
        return 32
    if image.mode == "1":
        return 1
    return 8


def open_image(path, max_pixels: int | None = None) -> Image.Image:
    """Open and fully decode an image, raising ImageDecodeError naming the file and the reason.

    With ``max_pixels``, an image whose header claims more pixels raises ImageTooLarge before decoding.
    """
    try:
        image = Image.open(path, formats=IMAGE_FORMATS)  # lazy: reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLarge(path, f"refused by Pillow's decompression-bomb guard ({error})") from None
    except UnidentifiedImageError:
        reason = f"not a recognised image format ({', '.join(IMAGE_FORMATS)}): corrupt or not an image"
        raise ImageDecodeError(path, reason) from None
    except Exception as error:  # untrusted bytes: any failure of a plugin is a finding, not a crash
        raise ImageDecodeError(path, _reason(error)) from None
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        image.close()
        raise ImageTooLarge(path, f"{width}x{height} is over the limit of {max_pixels} pixels: not decoded", width, height)
    try:
        image.load()  # decodes every byte: truncated or corrupt data fails here, not later
    except Exception as error:
        image.close()
        raise ImageDecodeError(path, _reason(error)) from None
    return image


def _reason(error: Exception) -> str:
    return str(error) or type(error).__name__


def has_colour(image: Image.Image) -> bool:
    """Whether a colour-mode image has colour, i.e. its red, green and blue channels differ somewhere."""
    if image.mode not in COLOUR_MODES:
        return False
    try:
        rgb = np.asarray(image.convert("RGB"))
    except ValueError:  # a colour space Pillow cannot convert: colour by definition
        return True
    return not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))


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


def inspect(image: Image.Image, metadata: tuple[str, ...] = ()) -> ImageFacts:
    """Facts for the integrity checks (size, mode, depth, contrast, colour, hash); ``metadata`` as found by the caller."""
    try:
        grey, max_value = to_grey_array(image)
    except ValueError:  # colour, palette, 1-bit, 32-bit...: judged on 8-bit luminance
        grey, max_value = np.asarray(image.convert("L")), 255.0
    return ImageFacts(
        width=image.width,
        height=image.height,
        mode=image.mode,
        bit_depth=bit_depth_of(image),
        std=float(grey.std()),
        dhash=difference_hash(grey),
        metadata=tuple(metadata),
        max_value=max_value,
        colour=has_colour(image),
    )


def load_xrv(path, size: int | None = None) -> np.ndarray:
    """Decode a file to a (1, H, W) float32 array in xrv range, optionally resized to ``size``.

    A larger image is area-averaged down (``RESAMPLING_DOWN``: each model pixel is the mean of
    the image pixels it covers, so a 512 px image reaches a 64 px model neither aliased nor
    blurred); a smaller one is interpolated up bilinearly.
    """
    grey, max_value = to_grey_array(open_image(path))
    if size is not None and grey.shape != (size, size):
        down = grey.shape[0] >= size and grey.shape[1] >= size
        resample = RESAMPLING_DOWN if down else Image.Resampling.BILINEAR
        resized = Image.fromarray(grey.astype(np.float32)).resize((size, size), resample)
        grey = np.asarray(resized)
    return to_xrv(grey, max_value)[None]


PIXEL_SIZE = 64  # the leakage checks' pixel comparisons run at this size (their shifts are counted in these pixels)


def load_pixels(collection: Collection, size: int = PIXEL_SIZE, dtype=np.float32) -> np.ndarray:
    """Every image as a (n, size, size) array in [0, 1] (16-bit scaled, not clipped)."""
    return load_pixel_sizes(collection, {size: dtype})[size]


def load_pixel_sizes(collection: Collection, sizes: dict[int, type]) -> dict[int, np.ndarray]:
    """Every image at each size (area-averaged down, bilinear up), each file decoded once: size -> (n, size, size)."""
    out = {size: np.empty((len(collection), size, size), dtype) for size, dtype in sizes.items()}
    for k, path in enumerate(collection.paths):
        grey, max_value = to_grey_array(open_image(path))
        image = Image.fromarray(grey.astype(np.float32) / max_value)
        for size, array in out.items():
            if grey.shape == (size, size):
                array[k] = np.asarray(image)
            else:
                shrink = grey.shape[0] >= size and grey.shape[1] >= size
                array[k] = np.asarray(image.resize((size, size), Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR))
    return out
