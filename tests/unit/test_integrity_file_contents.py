"""Integrity findings for what a file holds: embedded metadata, colour and mode, blankness, damage.

The companion of test_integrity_files.py (same tiny 16x16 release); each test plants one
bad file and asserts exactly which check reports it, naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.unit.test_integrity_files import (
    SIZE,
    add_file,
    encode,
    findings,
    grey_image,
    insert_chunk,
    noise,
    only,
    text_info,
    write_release,
)


@pytest.fixture
def root(tmp_path) -> Path:
    return write_release(tmp_path / "release")


# ----------------------------------------------------------------------------- embedded metadata


def test_trailing_bytes_after_iend(root):
    add_file(root, "images/tail.png", encode(grey_image(5)) + b"PatientName=DOE^JANE")
    assert only(root, "metadata", "images/tail.png") == "embedded metadata: 20 bytes after the IEND chunk"


def test_private_png_chunk(root):
    add_file(root, "images/private.png", insert_chunk(encode(grey_image(5)), b"prVt", b"DOE^JANE"))
    assert only(root, "metadata", "images/private.png") == "embedded metadata: private chunk 'prVt'"


@pytest.mark.parametrize("kind", ["tEXt", "zTXt", "iTXt"])
def test_png_text_chunks(root, kind):
    add_file(root, "images/text.png", encode(grey_image(5), pnginfo=text_info(kind)))
    assert only(root, "metadata", "images/text.png") == f"embedded metadata: {kind} text chunk 'PatientName'"


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x013B] = "DOE^JANE"  # Artist
    return exif


def test_png_exif(root):
    add_file(root, "images/exif.png", encode(grey_image(5), exif=_exif()))
    assert only(root, "metadata", "images/exif.png") == "embedded metadata: eXIf chunk (EXIF)"


def test_png_icc_profile(root):
    add_file(root, "images/icc.png", encode(grey_image(5), icc_profile=b"not really a profile"))
    assert only(root, "metadata", "images/icc.png") == "embedded metadata: iCCP chunk (ICC colour profile)"


def test_jpeg_exif(root):
    add_file(root, "images/exif.jpg", encode(grey_image(5), "JPEG", exif=_exif()))
    assert only(root, "metadata", "images/exif.jpg") == "embedded metadata: APP1 EXIF"


def test_jpeg_comment(root):
    add_file(root, "images/comment.jpg", encode(grey_image(5), "JPEG", comment=b"DOE^JANE"))
    assert only(root, "metadata", "images/comment.jpg") == "embedded metadata: COM comment segment"


def test_jpeg_trailing_bytes(root):
    add_file(root, "images/tail.jpg", encode(grey_image(5), "JPEG") + b"DOE^JANE")
    assert only(root, "metadata", "images/tail.jpg") == "embedded metadata: 8 bytes after the end-of-image marker"


def test_jpeg_jfif_thumbnail(root):
    data = encode(grey_image(5), "JPEG")
    assert data[6:11] == b"JFIF\0"
    length = int.from_bytes(data[4:6], "big") + 3
    with_thumbnail = data[:4] + length.to_bytes(2, "big") + data[6:18] + b"\x01\x01" + data[20:4 + length - 3] + b"\x80" * 3
    add_file(root, "images/thumb.jpg", with_thumbnail + data[4 + length - 3:])
    assert only(root, "metadata", "images/thumb.jpg") == "embedded metadata: APP0 JFIF thumbnail"


@pytest.mark.parametrize("tag, name", [(270, "ImageDescription"), (305, "Software"), (315, "Artist")])
def test_tiff_text_tags(root, tag, name):
    add_file(root, "images/tagged.tif", encode(grey_image(5), "TIFF", tiffinfo={tag: "DOE^JANE"}))
    assert only(root, "metadata", "images/tagged.tif") == f"embedded metadata: TIFF tag {name}"


def test_multi_frame_tiff(root):
    add_file(root, "images/pages.tif", encode(grey_image(5), "TIFF", save_all=True, append_images=[grey_image(6)]))
    assert only(root, "metadata", "images/pages.tif") == "embedded metadata: 2 frames (a release image holds exactly one)"


# ----------------------------------------------------------------------------- mode, colour, blank


def test_colour_rgb_in_an_rgb_release(tmp_path):
    root = write_release(tmp_path / "r", mode="RGB")
    colour = np.stack([noise(5), noise(6), noise(7)], axis=-1)
    add_file(root, "images/colour.png", encode(Image.fromarray(colour)))
    problem = only(root, "mode", "images/colour.png")
    assert problem == "colour image (mode RGB with channels that differ): chest X-rays must be grey"


def test_palette_image_in_a_grey_release(root):
    palette = Image.fromarray(noise(5), mode="L").convert("P")
    add_file(root, "images/palette.png", encode(palette))
    assert only(root, "mode", "images/palette.png") == "mode P (8-bit), declared L (8-bit)"


def _pgm(maxval: int, comment: bytes = b"") -> bytes:
    return b"P5\n" + comment + f"{SIZE} {SIZE}\n{maxval}\n".encode() + (noise(5) >> (8 - maxval.bit_length())).tobytes()


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_png_below_eight_bits_in_an_eight_bit_release(root, bits):
    if bits == 1:
        data = encode(Image.fromarray(noise(5)).convert("1"))
    else:  # Pillow opens 2- and 4-bit grey PNGs as 8-bit mode L
        data = encode(Image.fromarray(noise(5) >> (8 - bits)), bits=bits)
    assert data[24] == bits  # the IHDR's bit depth
    add_file(root, "images/shallow.png", data)
    mode = "1" if bits == 1 else "L"
    assert only(root, "mode", "images/shallow.png") == f"mode {mode} ({bits}-bit), declared L (8-bit)"


def test_pgm_of_maxval_15_in_an_eight_bit_release(root):
    add_file(root, "images/shallow.pgm", _pgm(15))
    assert only(root, "mode", "images/shallow.pgm") == "mode L (4-bit), declared L (8-bit)"


def test_eight_bit_pgm_passes(root):
    add_file(root, "images/deep.pgm", _pgm(255))
    assert findings(root) == {}


def test_pgm_header_comment(root):
    add_file(root, "images/comment.pgm", _pgm(255, b"# PatientName DOE^JANE\n"))
    assert only(root, "metadata", "images/comment.pgm") == "embedded metadata: 1 header comment(s)"


def test_sixteen_bit_near_blank_image(tmp_path):
    root = write_release(tmp_path / "r", mode="I;16")
    faint = noise(5, 30200, np.uint16, low=30000)  # std about 58 of 65535: a quarter of one 8-bit grey level
    add_file(root, "images/faint.png", encode(Image.fromarray(faint)))
    problem = only(root, "blank", "images/faint.png")
    assert problem.startswith("blank or constant (pixel std 0.2") and "of 65535; minimum 2.0" in problem


def test_eight_bit_constant_image(root):
    add_file(root, "images/flat.png", encode(Image.fromarray(np.full((SIZE, SIZE), 90, np.uint8))))
    assert only(root, "blank", "images/flat.png").startswith("blank or constant (pixel std 0.00 grey levels of 255")


# ----------------------------------------------------------------------------- damaged files


def test_truncated_png(root):
    data = encode(grey_image(5))
    add_file(root, "images/half.png", data[: len(data) // 2])
    assert "truncated" in only(root, "decode", "images/half.png")


def test_png_without_iend(root):
    add_file(root, "images/open.png", encode(grey_image(5))[:-12])
    assert "without an IEND chunk" in only(root, "decode", "images/open.png")


def test_png_with_a_bad_crc(root):
    data = bytearray(encode(grey_image(5)))
    data[50] ^= 0xFF  # inside the IDAT data
    add_file(root, "images/crc.png", bytes(data))
    assert "fails its CRC" in only(root, "decode", "images/crc.png")


def test_truncated_jpeg(root):
    data = encode(grey_image(5), "JPEG")
    add_file(root, "images/half.jpg", data[: len(data) // 2])
    assert "truncated" in only(root, "decode", "images/half.jpg")


def test_zero_byte_file(root):
    add_file(root, "images/empty.png", b"")
    assert only(root, "decode", "images/empty.png") == "empty file (0 bytes)"


def test_not_an_image(root):
    add_file(root, "images/notes.png", b"PatientName,DOE^JANE\n" * 10)
    assert "not a recognised image format" in only(root, "decode", "images/notes.png")
