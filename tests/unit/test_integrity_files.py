"""Every bad input becomes an integrity finding naming the file: no crash, no hang, no silent drop.

Each test plants one kind of bad file in a tiny, otherwise clean release (16x16
noise images) and asserts exactly which check reports it, and that the file is named.
Here: clean releases, determinism, oversized images and bombs, and what is not a
regular file (FIFOs, devices, sockets, directories, symlinks); what a file holds
(metadata, colour, blankness, damage) is in test_integrity_file_contents.py.
"""

from __future__ import annotations

import io
import os
import socket
import stat
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from synthgate.config.release import load_release, release_files
from synthgate.data import file_checks
from synthgate.evaluation import integrity
from synthgate.evaluation.integrity import scan_release

SIZE = 16
RELEASE_TOML = """\
[release]
name = "files"
generator = "a test"
source_datasets = ["phantom-site-a"]

[images]
width = 16
height = 16
mode = "{mode}"

[classes.finding]
model_output = "Mass"
min_count = 0
"""


def noise(seed: int, high: int = 256, dtype=np.uint8, low: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high, (SIZE, SIZE)).astype(dtype)


def grey_image(seed: int, mode: str = "L") -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(noise(seed, 65536, np.uint16))
    if mode == "RGB":
        return Image.fromarray(np.stack([noise(seed)] * 3, axis=-1))
    return Image.fromarray(noise(seed))


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def write_release(root: Path, mode: str = "L", n: int = 3) -> Path:
    (root / "images").mkdir(parents=True)
    rows = []
    for k in range(n):
        grey_image(k, mode).save(root / "images" / f"{k:03d}.png")
        rows.append(f"images/{k:03d}.png,{k % 2}\n")
    (root / "manifest.csv").write_text("path,finding\n" + "".join(rows))
    (root / "release.toml").write_text(RELEASE_TOML.format(mode=mode))
    return root


def add_row(root: Path, relative: str) -> None:
    with open(root / "manifest.csv", "a") as manifest:
        manifest.write(f"{relative},0\n")


def add_file(root: Path, relative: str, data: bytes) -> None:
    (root / relative).write_bytes(data)
    add_row(root, relative)


def run_scan(root: Path, workers: int | None = None):
    """Scan in a daemon thread: a hang fails the test instead of blocking the run."""
    done: dict = {}
    thread = threading.Thread(target=lambda: done.update(report=scan_release(load_release(root), workers)), daemon=True)
    thread.start()
    thread.join(60)
    assert "report" in done, "the integrity scan hung or crashed"
    return done["report"]


def findings(root: Path, workers: int | None = None) -> dict[str, list[tuple[str, str]]]:
    report = run_scan(root, workers)
    return {check: [(o.file, o.problem) for o in found] for check, found in report.problems.items() if found}


def only(root: Path, check: str, file: str) -> str:
    """The one finding of the scan: in ``check``, naming ``file``; returns its text."""
    found = findings(root)
    assert list(found) == [check], found
    assert [name for name, _ in found[check]] == [file], found
    return found[check][0][1]


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_with(width: int, height: int, idat: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def insert_chunk(png: bytes, kind: bytes, body: bytes) -> bytes:
    end = png.rindex(b"IEND") - 4
    return png[:end] + chunk(kind, body) + png[end:]


@pytest.fixture
def root(tmp_path) -> Path:
    return write_release(tmp_path / "release")


def text_info(kind: str) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    if kind == "iTXt":
        info.add_itxt("PatientName", "DOE^JANE")
    else:
        info.add_text("PatientName", "DOE^JANE", zip=kind == "zTXt")
    return info


# ----------------------------------------------------------------------------- clean releases


def test_clean_release_has_no_findings(root):
    add_file(root, "images/clean.jpg", encode(grey_image(7), "JPEG", quality=95))
    add_file(root, "images/progressive.jpg", encode(grey_image(8), "JPEG", progressive=True, optimize=True))
    add_file(root, "images/clean.tif", encode(grey_image(9), "TIFF"))
    add_file(root, "images/rendering.png", encode(grey_image(10), "PNG", dpi=(72, 72)))  # pHYs is harmless
    report = run_scan(root)
    assert report.ok, {c: p for c, p in report.problems.items() if p}
    assert len(report.facts) == 7


@pytest.mark.parametrize("mode", ["I;16", "RGB"])
def test_clean_16_bit_and_grey_rgb_releases(tmp_path, mode):
    assert findings(write_release(tmp_path / "r", mode=mode)) == {}


@pytest.mark.parametrize("n", [0, 1])
def test_a_release_without_images_is_a_finding(tmp_path, n):
    root = write_release(tmp_path / "r", n=n)  # min_count = 0: no class count asks for an image
    if n:
        assert findings(root) == {}
    else:
        assert only(root, "manifest_files", "manifest.csv") == "lists no images: a release holds at least one"


RECORD = b'{"record": "synthgate clearance record", "record_version": 2}'


@pytest.mark.parametrize("content, ordinary", [
    (RECORD, False),
    (b"PatientName,DOE^JANE\n", True),
    (b'{"record": "a patient record", "name": "DOE^JANE"}', True),
    (b'[{"record": "synthgate clearance record"}]', True),
    (b"[" * 100000, True),
])
def test_clearance_json_is_skipped_only_when_it_is_a_clearance_record(root, content, ordinary):
    (root / "clearance.json").write_bytes(content)
    report = run_scan(root)
    assert ("clearance.json" in release_files(load_release(root))) is ordinary
    assert ("clearance.json" in report.file_digests) is ordinary  # and so in the content hash
    if ordinary:
        assert only(root, "manifest_files", "clearance.json") == "a regular file in the release folder but not in the manifest"
    else:
        assert report.ok


def test_symlink_named_clearance_json_is_not_a_clearance_record(root):
    (root / "images" / "record.json").write_bytes(RECORD)
    os.symlink("images/record.json", root / "clearance.json")
    assert [name for name, _ in findings(root)["manifest_files"]] == ["clearance.json", "images/record.json"]


def test_scan_is_deterministic_and_examines_each_row_once(root, monkeypatch):
    os.mkfifo(root / "images" / "pipe.png")
    os.symlink("loop.png", root / "images" / "loop.png")
    add_file(root, "images/text.png", encode(grey_image(5), pnginfo=text_info("tEXt")))
    add_row(root, "images/./000.png")  # the same file again under another spelling
    calls: list[str] = []
    real_examine = integrity.examine

    def counting(root_, relative, *args, **kwargs):
        calls.append(relative)
        return real_examine(root_, relative, *args, **kwargs)

    monkeypatch.setattr(integrity, "examine", counting)
    first = findings(root, workers=1)
    assert sorted(calls) == sorted(set(calls)) == ["images/000.png", "images/001.png", "images/002.png",
                                                    "images/loop.png", "images/pipe.png", "images/text.png"]
    assert first["manifest_files"][0] == ("images/000.png", "listed twice in the manifest (lines 2 and 6)")
    assert all(findings(root, workers=4) == first for _ in range(3))


# ----------------------------------------------------------------------------- size: bombs and oversized images


def test_decompression_bomb_header_is_a_size_finding(root):
    add_file(root, "images/bomb.png", png_with(30000, 30000, zlib.compress(bytes(30001 * 4))))
    problem = only(root, "size", "images/bomb.png")
    assert "30000x30000" in problem and "declared 16x16" in problem and "not decoded" in problem


def test_oversized_image_is_refused_before_decoding(root, monkeypatch):
    compressor = zlib.compressobj(1)
    row = bytes(12001)  # filter byte + 12000 grey pixels
    idat = b"".join(compressor.compress(row) for _ in range(12000)) + compressor.flush()
    add_file(root, "images/huge.png", png_with(12000, 12000, idat))
    opened: list[int] = []
    real_open = integrity.open_image

    def recording(source, max_pixels=None):
        opened.append(len(source.getbuffer()))
        return real_open(source, max_pixels)

    monkeypatch.setattr(integrity, "open_image", recording)
    problem = only(root, "size", "images/huge.png")
    assert "12000x12000" in problem and "over the limit of 1024 pixels" in problem
    assert len(opened) == 3 and max(opened) < len(idat), "the oversized image was handed to the decoder"


def test_image_over_the_pixel_limit_without_a_png_header(root):
    add_file(root, "images/big.jpg", encode(Image.fromarray(np.zeros((40, 40), np.uint8)), "JPEG"))
    assert "40x40 is over the limit of 1024 pixels" in only(root, "size", "images/big.jpg")


@pytest.mark.parametrize("limit", [100, 200])  # 256 pixels: Pillow's DecompressionBombError, then its warning
def test_pillow_decompression_bomb_guard_is_a_size_finding(tmp_path, monkeypatch, limit):
    root = write_release(tmp_path / "r", n=0)
    add_file(root, "images/guarded.jpg", encode(grey_image(1), "JPEG"))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    assert "decompression-bomb guard" in only(root, "size", "images/guarded.jpg")


def test_file_too_big_to_be_an_image_is_not_read(root, monkeypatch):
    monkeypatch.setattr(file_checks, "MIN_BYTE_LIMIT", 100)
    add_file(root, "images/padded.png", encode(grey_image(4)) + bytes(20000))
    assert "far more than an image of the declared 16x16 needs" in only(root, "size", "images/padded.png")


# ----------------------------------------------------------------------------- what is not a regular file


def _blocked_writer(fifo: Path) -> threading.Thread:
    """A writer that stays blocked until someone opens the FIFO for reading."""
    writer = threading.Thread(target=lambda: open(fifo, "wb").close(), daemon=True)
    writer.start()
    return writer


@pytest.mark.parametrize("listed", [True, False])
def test_fifo_is_a_finding_and_never_opened(root, listed):
    fifo = root / "images" / "pipe.png"
    os.mkfifo(fifo)
    if listed:
        add_row(root, "images/pipe.png")
    writer = _blocked_writer(fifo)
    try:
        problem = only(root, "manifest_files", "images/pipe.png")
        assert writer.is_alive(), "the scan opened the FIFO"
    finally:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # release the writer
        writer.join(5)
    expected = "a FIFO (named pipe), not an image file" if listed else "in the release folder but not in the manifest"
    assert expected in problem


def test_symlink_to_a_device_outside_the_release(root):
    os.symlink("/dev/null", root / "images" / "null.png")
    add_row(root, "images/null.png")
    assert "symlink pointing outside the release" in only(root, "paths", "images/null.png")


def test_device_node_inside_the_release(root):
    try:
        os.mknod(root / "images" / "device.png", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except OSError as error:
        pytest.skip(f"cannot create a device node here ({error.strerror})")
    add_row(root, "images/device.png")
    assert only(root, "manifest_files", "images/device.png") == "a character device, not an image file"


def test_socket_inside_the_release(root):
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(root / "images" / "s.png"))
    except OSError as error:
        pytest.skip(f"cannot bind a unix socket here ({error.strerror})")
    try:
        add_row(root, "images/s.png")
        assert only(root, "manifest_files", "images/s.png") == "a socket, not an image file"
    finally:
        server.close()


def test_directory_listed_as_an_image(root):
    (root / "images" / "folder.png").mkdir()
    add_row(root, "images/folder.png")
    assert "it is a directory, not an image file" in only(root, "manifest_files", "images/folder.png")


def test_symlink_to_a_directory_listed_as_an_image(root):
    os.symlink(".", root / "images" / "here.png")
    add_row(root, "images/here.png")
    assert "symlink to a directory" in only(root, "manifest_files", "images/here.png")


@pytest.mark.parametrize("listed", [True, False])
def test_symlink_loop(root, listed):
    os.symlink("loop.png", root / "images" / "loop.png")
    if listed:
        add_row(root, "images/loop.png")
        assert only(root, "paths", "images/loop.png") == "symlink loop (manifest line 5)"
    else:
        found = findings(root)
        assert found == {"paths": [("images/loop.png", "symlink loop (loop.png)")],
                         "manifest_files": [("images/loop.png", "a symlink loop in the release folder but not in the manifest")]}


@pytest.mark.parametrize("target, name", [("../release.toml", "release.toml"), ("../manifest.csv", "manifest.csv")])
def test_symlink_to_the_releases_own_files(root, target, name):
    os.symlink(target, root / "images" / "config.png")
    add_row(root, "images/config.png")
    assert only(root, "paths", "images/config.png") == f"symlink to the release's own {name}, not an image"


def test_symlink_to_a_file_outside_the_root(root, tmp_path):
    grey_image(42).save(tmp_path / "outside.png")
    os.symlink(tmp_path / "outside.png", root / "images" / "out.png")
    add_row(root, "images/out.png")
    assert only(root, "paths", "images/out.png") == "symlink pointing outside the release (manifest line 5)"


def test_unlisted_symlink_to_a_folder_outside_the_root(root, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "images" / "linked")
    assert "images/linked" in release_files(load_release(root))
    found = findings(root)
    assert found["paths"] == [("images/linked", f"symlink pointing outside the release ({tmp_path / 'elsewhere'})")]
    assert [name for name, _ in found["manifest_files"]] == ["images/linked"] and set(found) == {"paths", "manifest_files"}


def test_row_naming_the_release_config(root):
    add_row(root, "release.toml")
    problem = only(root, "manifest_files", "release.toml")
    assert problem == "in the manifest (line 5) but it is the release's own release.toml, not an image"


def test_broken_symlink(root):
    os.symlink("nothing.png", root / "images" / "gone.png")
    add_row(root, "images/gone.png")
    assert only(root, "manifest_files", "images/gone.png") == "broken symlink: nothing.png does not exist"


def test_symlink_to_another_image_inside_the_release_is_followed(root):
    (root / "images" / "sub").mkdir()
    os.symlink("../000.png", root / "images" / "sub" / "alias.png")
    add_row(root, "images/sub/alias.png")
    assert only(root, "exact_duplicates", "images/sub/alias.png") == "byte-identical to images/000.png"
