"""What a release file is and what it carries besides pixels, found without trusting it.

Two steps come before any image decoder sees a file:

* ``locate`` says what a path in the release folder *is* from ``lstat``/``stat``
  alone (nothing is opened): a regular file, or a FIFO, device, socket,
  directory, symlink loop, broken symlink, or a symlink that leaves the release
  root or points at the release's own control files. Symlinks are resolved
  against the release root, never against the file's own folder.
* ``read_regular`` opens only regular files (non-blocking, checked again with
  ``fstat`` on the open descriptor), so a FIFO swapped in meanwhile can never block.

``scan_bytes`` then walks a PNG's chunks, a JPEG's segments or a PNM header: structural damage
(truncation, bad CRCs, no end marker) is a decode problem, anything but the
image itself is embedded metadata. ``image_metadata`` covers what only the
decoder sees (TIFF tags, Pillow's ``info`` of other formats, extra frames).

What counts as harmless, standard content (everything else is metadata):

* PNG: the critical chunks IHDR, PLTE, IDAT, IEND, and the fixed-layout rendering
  chunks gAMA, cHRM, sRGB, sBIT, pHYs, bKGD and tRNS (numbers only; they cannot
  hold text). tEXt/zTXt/iTXt, eXIf, iCCP (a named profile), tIME, sPLT, hIST,
  APNG animation chunks, private or unknown chunks and bytes after IEND are metadata.
* PBM/PGM/PPM: the header's numbers; its ``#`` comments are metadata.
* JPEG: markers of the image itself, APP0 ``JFIF`` without a thumbnail and APP14
  ``Adobe`` (colour transform flags). COM comments, every other APPn (EXIF, XMP, ICC, ...) and bytes
  after the end-of-image marker are metadata.
* TIFF: the tags that describe the raster's layout (``TIFF_LAYOUT_TAGS``); text
  tags (ImageDescription, Software, Artist, DateTime, ...), EXIF/GPS/XMP/IPTC
  blocks and private tags are metadata.
* Any format: more than one frame or page.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import TiffTags

from synthgate.storage import kind_of

# Files larger than this are hashed but never read into memory or decoded (see ``byte_limit``).
MIN_BYTE_LIMIT = 64 << 20
MAX_LISTED = 8  # metadata items named per file before "... and N more"

@dataclass(frozen=True)
class Located:
    """What a release path is. ``path`` is the regular file to read, or None with ``check``/``problem`` set.

    ``stand_in`` is hashed in place of the content of a path that is not read (the symlink's
    text, or the kind of special file), so the release's content hash still covers it.
    """

    kind: str
    path: Path | None = None
    check: str | None = None
    problem: str | None = None
    stand_in: bytes = b""


def locate(root: Path, relative: str, protected: set[Path]) -> Located:
    """Classify ``root/relative`` without opening it; ``protected`` are the release's control files."""
    path = root / relative
    try:
        info = os.lstat(path)
    except OSError as error:
        return Located("missing", check="manifest_files", problem=f"cannot be examined ({error.strerror})")
    if not stat.S_ISLNK(info.st_mode):
        if stat.S_ISREG(info.st_mode):
            return Located("a regular file", path=path)
        kind = kind_of(info.st_mode)
        return Located(kind, check="manifest_files", problem=f"{kind}, not an image file", stand_in=kind.encode())

    link = "?"
    try:
        link = os.readlink(path)
        target_info = os.stat(path)
    except OSError as error:
        stand_in = f"symlink:{link}".encode()
        if error.errno == errno.ELOOP:
            return Located("a symlink loop", check="paths", problem=f"symlink loop ({link})", stand_in=stand_in)
        if error.errno == errno.ENOENT:
            return Located("a broken symlink", check="manifest_files", problem=f"broken symlink: {link} does not exist",
                           stand_in=stand_in)
        return Located("a symlink", check="paths", problem=f"symlink that cannot be followed ({error.strerror})",
                       stand_in=stand_in)
    stand_in = f"symlink:{link}".encode()
    target = Path(os.path.realpath(path))
    if not target.is_relative_to(root):
        return Located("a symlink", check="paths", problem=f"symlink pointing outside the release ({link})",
                       stand_in=stand_in)
    if target in protected:
        return Located("a symlink", check="paths",
                       problem=f"symlink to the release's own {target.relative_to(root).as_posix()}, not an image",
                       stand_in=stand_in)
    if not stat.S_ISREG(target_info.st_mode):
        kind = kind_of(target_info.st_mode)
        return Located("a symlink", check="manifest_files", problem=f"symlink to {kind} ({link}), not an image file",
                       stand_in=stand_in)
    return Located("a symlink", path=target)


def byte_limit(max_pixels: int) -> int:
    """The largest file worth reading: generous for any encoding of an image within the pixel limit."""
    return max(MIN_BYTE_LIMIT, 8 * max_pixels)


class NotRegular(OSError):
    """The path turned out not to be a regular file once opened (it changed since ``locate``)."""


def read_regular(path: Path, max_bytes: int) -> tuple[str, bytes | None]:
    """sha256 and bytes of a regular file; bytes None (hash streamed) when it exceeds ``max_bytes``.

    Opened non-blocking and checked with ``fstat``, so a FIFO can never block the scan.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular(errno.EINVAL, f"{kind_of(info.st_mode)}, not an image file")
        if info.st_size <= max_bytes:
            data = handle.read()
            return hashlib.sha256(data).hexdigest(), data
        digest = hashlib.sha256()
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
        return digest.hexdigest(), None


@dataclass(frozen=True)
class ByteScan:
    """What the bytes of a PNG, JPEG or PNM say before decoding. ``format`` is None for other formats."""

    format: str | None = None
    size: tuple[int, int] | None = None
    metadata: tuple[str, ...] = ()
    problem: str | None = None  # structural damage: the file is not a sound image
    # Bits per sample as the header declares them: Pillow decodes 2- and 4-bit PNGs and a PGM
    # of maxval 15 as 8-bit mode L, scaled up, so only the header tells their true depth.
    bit_depth: int | None = None


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_HARMLESS = {"IHDR", "PLTE", "IDAT", "IEND", "gAMA", "cHRM", "sRGB", "sBIT", "pHYs", "bKGD", "tRNS"}
PNG_NAMED = {
    "eXIf": "EXIF",
    "iCCP": "ICC colour profile",
    "tIME": "timestamp",
    "sPLT": "suggested palette",
    "hIST": "palette histogram",
    "acTL": "animation",
    "fcTL": "animation frame",
    "fdAT": "animation frame data",
}


def scan_bytes(data: bytes) -> ByteScan:
    if data.startswith(PNG_SIGNATURE):
        return _scan_png(data)
    if data.startswith(b"\xff\xd8"):
        return _scan_jpeg(data)
    if PNM_MAGIC.match(data):
        return _scan_pnm(data)
    return ByteScan()


def _scan_png(data: bytes) -> ByteScan:
    found: list[str] = []
    size = depth = None
    position = len(PNG_SIGNATURE)
    while True:
        if position + 8 > len(data):
            return ByteScan("PNG", size, problem=f"truncated: the file ends at byte {len(data)} without an IEND chunk")
        length, raw_type = struct.unpack(">I4s", data[position : position + 8])
        name = raw_type.decode("latin-1")
        if not raw_type.isalpha():
            return ByteScan("PNG", size, problem=f"corrupt: invalid chunk type {raw_type!r} at byte {position}")
        end = position + 12 + length
        if end > len(data):
            return ByteScan("PNG", size, problem=f"truncated: chunk {name} at byte {position} runs past the end of the file")
        body = data[position + 8 : end - 4]
        if zlib.crc32(raw_type + body) != int.from_bytes(data[end - 4 : end], "big"):
            return ByteScan("PNG", size, problem=f"corrupt: chunk {name} at byte {position} fails its CRC")
        if position == len(PNG_SIGNATURE) and (name != "IHDR" or length < 8):
            return ByteScan("PNG", size, problem="corrupt: the first chunk is not a valid IHDR")
        if name == "IHDR":
            size = struct.unpack(">II", body[:8])
            depth = body[8] if len(body) > 8 else None
        elif name in ("tEXt", "zTXt", "iTXt"):
            keyword = body.split(b"\0", 1)[0][:79].decode("latin-1")
            found.append(f"{name} text chunk '{keyword}'")
        elif name in PNG_NAMED:
            found.append(f"{name} chunk ({PNG_NAMED[name]})")
        elif name not in PNG_HARMLESS:
            found.append(f"{'private' if name[1].islower() else 'unknown'} chunk '{name}'")
        position = end
        if name == "IEND":
            break
    if position < len(data):
        found.append(f"{len(data) - position} bytes after the IEND chunk")
    return ByteScan("PNG", size, tuple(dict.fromkeys(found)), bit_depth=depth)


PNM_MAGIC = re.compile(rb"P[1-6](?=[\s#])")
PNM_TOKEN = re.compile(rb"\s*(?:#([^\r\n]*)|([0-9]+))")


def _scan_pnm(data: bytes) -> ByteScan:
    """A PBM/PGM/PPM header: its size, its maxval's bit length as the depth, and its comments (metadata).

    Anything malformed is left to the decoder to report.
    """
    bitmap = data[1:2] in b"14"  # P1/P4 are 1-bit and have no maxval
    numbers: list[int] = []
    comments = 0
    position = 2
    while len(numbers) < (2 if bitmap else 3) and (match := PNM_TOKEN.match(data, position)):
        position = match.end()
        if match[1] is None:
            numbers.append(int(match[2]))
        else:
            comments += 1
    size = tuple(numbers[:2]) if len(numbers) >= 2 else None
    depth = 1 if bitmap else numbers[2].bit_length() if len(numbers) == 3 else None
    found = (f"{comments} header comment(s)",) if comments else ()  # not quoted: a comment is free text
    return ByteScan("PNM", size, found, bit_depth=depth)


JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn carry no length


def _jpeg_app(number: int, body: bytes) -> str | None:
    """None for a harmless APPn segment, else what it holds."""
    if number == 0 and body.startswith(b"JFIF\0"):
        thumbnail = body[12:14]  # JFIF: version, units, densities, then the thumbnail's width and height
        return f"APP{number} JFIF thumbnail" if len(thumbnail) == 2 and thumbnail[0] * thumbnail[1] else None
    if number == 14 and body.startswith(b"Adobe"):
        return None
    if body.startswith(b"Exif\0"):
        return f"APP{number} EXIF"
    if body.startswith(b"http://ns.adobe.com/xap/") or body.startswith(b"http://ns.adobe.com/xmp/"):
        return f"APP{number} XMP"
    if body.startswith(b"ICC_PROFILE\0"):
        return f"APP{number} ICC colour profile"
    label = body.split(b"\0", 1)[0][:32].decode("latin-1")
    return f"APP{number} segment '{label}'" if label.isprintable() and label else f"APP{number} segment"


def _scan_jpeg(data: bytes) -> ByteScan:
    found: list[str] = []
    position = 2
    while True:
        if position >= len(data):
            return ByteScan("JPEG", problem=f"truncated: the file ends at byte {len(data)} without an end-of-image marker")
        if data[position] != 0xFF:
            return ByteScan("JPEG", problem=f"corrupt: no marker at byte {position}")
        while position < len(data) and data[position] == 0xFF:  # fill bytes
            position += 1
        if position >= len(data):
            continue
        marker = data[position]
        position += 1
        if marker == 0xD9:
            break
        if marker in JPEG_STANDALONE:
            continue
        if position + 2 > len(data):
            return ByteScan("JPEG", problem=f"truncated: the file ends inside marker 0x{marker:02X}")
        length = int.from_bytes(data[position : position + 2], "big")
        if length < 2 or position + length > len(data):
            return ByteScan("JPEG", problem=f"truncated: segment 0x{marker:02X} at byte {position - 2} runs past the end")
        body = data[position + 2 : position + length]
        if marker == 0xFE:
            found.append("COM comment segment")
        elif 0xE0 <= marker <= 0xEF and (what := _jpeg_app(marker - 0xE0, body)):
            found.append(what)
        position += length
        if marker == 0xDA:  # entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or RSTn
            position = _end_of_scan(data, position)
    if position < len(data):
        found.append(f"{len(data) - position} bytes after the end-of-image marker")
    return ByteScan("JPEG", None, tuple(dict.fromkeys(found)))


def _end_of_scan(data: bytes, position: int) -> int:
    while True:
        position = data.find(b"\xff", position)
        if position < 0 or position + 1 >= len(data):
            return len(data)
        following = data[position + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            position += 2
        elif following == 0xFF:
            position += 1
        else:
            return position


# TIFF tags that describe the raster itself (baseline layout, compression, colour); all others are metadata.
TIFF_LAYOUT_TAGS = {
    254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 273, 274, 277, 278, 279, 280, 281, 282, 283, 284,
    290, 291, 292, 293, 296, 297, 301, 317, 318, 319, 320, 322, 323, 324, 325, 338, 339, 340, 341, 347,
    529, 530, 531, 532,
}
# Keys Pillow puts in ``Image.info`` for embedded text or metadata blocks (formats without a byte scan).
INFO_METADATA_KEYS = ("exif", "comment", "xmp", "XML:com.adobe.xmp", "icc_profile", "photoshop", "iptc", "dicom")


def image_metadata(image, scanned: bool) -> tuple[str, ...]:
    """Metadata only the decoder sees: TIFF tags, ``info`` blocks (unless ``scanned`` bytewise), extra frames."""
    found: list[str] = []
    for tag in sorted(getattr(image, "tag_v2", None) or {}):
        if tag not in TIFF_LAYOUT_TAGS:
            name = TiffTags.lookup(tag).name
            found.append(f"TIFF tag {name}" if name != "unknown" else f"private TIFF tag {tag}")
    if not scanned:
        found += [f"embedded {key}" for key in INFO_METADATA_KEYS if image.info.get(key)]
        found += [f"text '{key}'" for key in getattr(image, "text", None) or {}]
    try:
        frames = getattr(image, "n_frames", 1)
    except (OSError, SyntaxError, ValueError, EOFError):  # a broken chain of frames: the decoder reports it
        frames = 1
    if frames > 1:
        found.append(f"{frames} frames (a release image holds exactly one)")
    return tuple(dict.fromkeys(found))


def describe(items: tuple[str, ...] | list[str]) -> str:
    """'a, b, c' naming at most MAX_LISTED items."""
    shown = ", ".join(items[:MAX_LISTED])
    return shown if len(items) <= MAX_LISTED else f"{shown} and {len(items) - MAX_LISTED} more"
