"""One pass over a release's files: hashes, decoding, and every integrity finding.

Each file is read once; its bytes give the content hash and the decoded image the
facts the checks need. Findings are grouped by check so that each gate test
reports exactly its own problem and nothing else.

Every bad input becomes a finding naming the file, never a crash, a hang or a
silent drop (see ``synthgate.data.file_checks`` for how a file is examined):

* ``paths``: manifest paths that are empty, absolute or escape the release folder,
  and symlinks that loop or resolve (against the release root) outside it or to
  its own release.toml / manifest / clearance record.
* ``manifest_files``: a manifest without rows, rows without a file (or naming a directory),
  files without a row, rows listed twice, and anything that is not a regular file (FIFO,
  device, socket, broken symlink). Only regular files are ever opened.
* ``decode``: empty, truncated, corrupt or unreadable files.
* ``size``: a size other than the declared one. An image whose header claims more
  than ``PIXEL_LIMIT_FACTOR`` x the declared pixels is never decoded (a
  decompression bomb or a far too large image), nor is a file too big to be one.
* ``mode``: another mode or bit depth than declared (the depth in a PNG's or PNM's header,
  which Pillow may scale up to 8 bits), and colour (RGB channels that
  differ) even in a release that declares RGB: chest X-rays are grey.
* ``blank``: pixel std below ``blank_std``, which is in 8-bit grey levels at every bit
  depth (a 16-bit image is blank below ``blank_std * 257`` in its own units).
* ``metadata``: embedded text, EXIF/XMP/ICC, private chunks, PNM header comments, trailing bytes,
  extra frames.

The scan is deterministic: files are examined in parallel but findings are
collected in manifest order and sorted path order, each manifest row once.
"""

from __future__ import annotations

import io
import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from synthgate.config.manifest import MANIFEST_INFO_COLUMNS
from synthgate.config.release import (
    ImageSpec,
    Release,
    content_hash,
    control_files,
    release_files,
    resolve_member,
)
from synthgate.data.file_checks import (
    NotRegular,
    byte_limit,
    describe,
    image_metadata,
    locate,
    read_regular,
    scan_bytes,
)
from synthgate.data.imaging import ImageDecodeError, ImageFacts, ImageTooLarge, inspect, open_image
from synthgate.progress import step
from synthgate.storage import sha256_bytes

CHECKS = (
    "paths",
    "manifest_files",
    "decode",
    "size",
    "mode",
    "blank",
    "exact_duplicates",
    "labels",
    "class_counts",
    "metadata",
)
LABEL_VALUES = {"0": 0, "1": 1}
PIXEL_LIMIT_FACTOR = 4  # an image may claim at most this many times the declared pixels before it is refused
SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B"}


@dataclass(frozen=True)
class Offence:
    """One offending file (or manifest line) and what is wrong with it."""

    file: str
    problem: str


@dataclass
class IntegrityReport:
    content_hash: str
    file_digests: dict[str, str]
    facts: dict[str, ImageFacts]
    problems: dict[str, list[Offence]] = field(default_factory=lambda: {check: [] for check in CHECKS})
    near_duplicates: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())


@dataclass
class FileResult:
    """What examining one file found: its digest, what it is, its findings as (check, problem), its facts."""

    digest: str
    kind: str
    findings: list[tuple[str, str]] = field(default_factory=list)
    facts: ImageFacts | None = None


def _normalise(relative: str) -> str:
    return PurePosixPath(os.path.normpath(relative)).as_posix()


def pixel_limit(spec: ImageSpec) -> int:
    return spec.width * spec.height * PIXEL_LIMIT_FACTOR


def examine(root: Path, relative: str, protected: set[Path], spec: ImageSpec, decode: bool,
            decoded: dict | None = None) -> FileResult:
    """Hash one release file and, when ``decode``, inspect it; only a regular file is ever opened.

    ``decoded`` maps a file's sha256 to what inspecting its bytes found (under one image
    spec): a file whose content was inspected before is not decoded again.
    """
    try:
        located = locate(root, relative, protected)
    except OSError as error:  # the folder changed under the scan
        reason = f"cannot be examined ({error.strerror or error})"
        return FileResult(sha256_bytes(reason.encode()), "an entry", [("manifest_files", reason)])
    if located.path is None:
        return FileResult(sha256_bytes(located.stand_in), located.kind, [(located.check, located.problem)])
    max_pixels, max_bytes = pixel_limit(spec), byte_limit(pixel_limit(spec))
    try:
        digest, data = read_regular(located.path, max_bytes)
    except NotRegular as error:
        return FileResult(sha256_bytes(error.strerror.encode()), located.kind, [("manifest_files", error.strerror)])
    except OSError as error:
        reason = f"cannot be read ({error.strerror or error})"
        return FileResult(sha256_bytes(reason.encode()), located.kind, [("decode", reason)])
    result = FileResult(digest, located.kind)
    if not decode:
        return result
    if data is None:
        result.findings.append(("size", f"over {max_bytes} bytes, far more than an image of the declared "
                                        f"{spec.width}x{spec.height} needs: not decoded"))
        return result
    if decoded is None:
        result.findings, result.facts = _decode(data, spec, max_pixels)
        return result
    if digest not in decoded:
        decoded[digest] = _decode(data, spec, max_pixels)
    findings, result.facts = decoded[digest]
    result.findings = list(findings)  # a copy: the table's entry is shared by every file with these bytes
    return result


def _decode(data: bytes, spec: ImageSpec, max_pixels: int) -> tuple[list[tuple[str, str]], ImageFacts | None]:
    if not data:
        return [("decode", "empty file (0 bytes)")], None
    scan = scan_bytes(data)
    if scan.problem:
        return [("decode", scan.problem)], None
    findings: list[tuple[str, str]] = []
    metadata = scan.metadata
    declared = f"declared {spec.width}x{spec.height}"
    facts = None
    if scan.size and scan.size[0] * scan.size[1] > max_pixels:
        width, height = scan.size
        findings.append(("size", f"{width}x{height} in its header, {declared}: over the limit of {max_pixels} pixels, "
                                 "not decoded (a decompression bomb or far too large)"))
    else:
        try:
            image = open_image(io.BytesIO(data), max_pixels)
            with image:
                metadata += image_metadata(image, scanned=scan.format is not None)
                facts = inspect(image, tuple(dict.fromkeys(metadata)))
            if scan.bit_depth is not None:  # the header's depth, not the depth Pillow scaled the pixels to
                facts = replace(facts, bit_depth=scan.bit_depth)
        except ImageTooLarge as error:
            findings.append(("size", f"{error.reason}; {declared}"))
        except ImageDecodeError as error:
            findings.append(("decode", error.reason))
        except Exception as error:  # inspecting an odd but decodable image: still a finding, never a crash
            findings.append(("decode", f"cannot be inspected ({error or type(error).__name__})"))
    if metadata:
        findings.append(("metadata", f"embedded metadata: {describe(tuple(dict.fromkeys(metadata)))}"))
    return findings, facts


def scan_release(release: Release, workers: int | None = None, decoded: dict | None = None) -> IntegrityReport:
    """Hash and inspect every file of ``release`` and collect the findings of every check.

    Every file is hashed and located on every scan; ``decoded`` (see :func:`examine`)
    spares decoding the ones whose content was inspected before.
    """
    problems: dict[str, list[Offence]] = {check: [] for check in CHECKS}
    root = release.root
    listed, refused = _manifest_paths(release, problems)
    if not release.manifest.rows:  # an empty release would pass every file check and leave nothing to measure
        problems["manifest_files"].append(Offence(release.manifest.file.name, "lists no images: a release holds at least one"))
    on_disk = set(release_files(release))
    protected = _protected(release)
    for relative, line in listed.items():
        if relative not in on_disk:
            problems["manifest_files"].append(
                Offence(relative, f"in the manifest (line {line}) but {_absent(root, relative, protected)}")
            )

    names = sorted(on_disk)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # Pillow's warning is a refusal too
        def examined(relative: str):
            result = examine(root, relative, protected, release.images, decode=relative in listed, decoded=decoded)
            progress.advance()
            return result

        with step(f"checking {len(names):,} files of release {release.name}", total=len(names), unit="file") as progress, \
                ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
            results = dict(zip(names, pool.map(examined, names)))
    digests = {relative: result.digest for relative, result in results.items()}

    facts: dict[str, ImageFacts] = {}
    for relative in names:
        result = results[relative]
        if relative in refused:  # its manifest row was refused already, with its line
            continue
        if relative not in listed:
            problems["manifest_files"].append(Offence(relative, f"{result.kind} in the release folder but not in the manifest"))
            result.findings = [found for found in result.findings if found[0] == "paths"]
        for check, problem in result.findings:
            problems[check].append(Offence(relative, problem))
        if result.facts is not None:
            facts[relative] = result.facts
            _judge(relative, result.facts, release, problems)

    first_with_digest: dict[str, str] = {}
    for relative in sorted(facts):
        digest = digests[relative]
        if digest in first_with_digest:
            problems["exact_duplicates"].append(Offence(relative, f"byte-identical to {first_with_digest[digest]}"))
        else:
            first_with_digest[digest] = relative

    _check_labels(release, problems, release.manifest.file.name)
    return IntegrityReport(
        content_hash=content_hash(release.manifest.file, digests),
        file_digests=digests,
        facts=facts,
        problems=problems,
        near_duplicates=near_duplicate_pairs(
            {r: facts[r].dhash for r in first_with_digest.values()}, release.integrity.near_duplicate_bits
        ),
    )


def _protected(release: Release) -> set[Path]:
    """The release's own files, which no manifest row may name as an image."""
    return {Path(os.path.realpath(p)) for p in control_files(release)}


def hash_files(release: Release) -> dict[str, str]:
    """Every file's digest exactly as the scan computes it, without decoding (what a clearance record binds).

    Special files and symlink loops get the scan's stand-in digest: nothing here can hang or crash.
    """
    protected = _protected(release)
    return {relative: examine(release.root, relative, protected, release.images, decode=False).digest
            for relative in release_files(release)}


def _manifest_paths(release: Release, problems: dict[str, list[Offence]]) -> tuple[dict[str, int], set[str]]:
    """Each manifest row once: listed paths (normalised) with their line, and the refused ones."""
    listed: dict[str, int] = {}
    refused: set[str] = set()
    for row in release.manifest.rows:
        try:
            _, refusal = resolve_member(release.root, row.path)
        except RuntimeError:  # pathlib's "Symlink loop from ..."
            refusal = "symlink loop"
        except (OSError, ValueError) as error:
            refusal = f"path cannot be resolved ({error})"
        if refusal:
            problems["paths"].append(Offence(row.path, f"{refusal} (manifest line {row.line})"))
            refused.add(_normalise(row.path))
            continue
        relative = _normalise(row.path)
        if relative in listed:
            problems["manifest_files"].append(
                Offence(row.path, f"listed twice in the manifest (lines {listed[relative]} and {row.line})")
            )
            continue
        listed[relative] = row.line
    return listed, refused


def _absent(root: Path, relative: str, protected: set[Path]) -> str:
    """Why a listed path is not among the release's files."""
    path = root / relative
    if Path(os.path.realpath(path)) in protected:
        return f"it is the release's own {relative}, not an image"
    if path.is_dir():
        return "it is a directory, not an image file"
    if os.path.lexists(path):
        return "it lies in a symlinked folder, not in the release folder itself"
    return "no such file"


def _judge(relative: str, facts: ImageFacts, release: Release, problems: dict[str, list[Offence]]) -> None:
    """The checks on a decoded image: size, mode and colour, blankness."""
    spec = release.images
    if (facts.width, facts.height) != (spec.width, spec.height):
        problems["size"].append(Offence(relative, f"{facts.width}x{facts.height}, declared {spec.width}x{spec.height}"))
    mode = "I;16" if facts.mode in SIXTEEN_BIT_MODES else facts.mode
    wrong = []
    if mode != spec.mode or facts.bit_depth != spec.bit_depth:
        wrong.append(f"mode {facts.mode} ({facts.bit_depth}-bit), declared {spec.mode} ({spec.bit_depth}-bit)")
    if facts.colour:
        wrong.append(f"colour image (mode {facts.mode} with channels that differ): chest X-rays must be grey")
    if wrong:
        problems["mode"].append(Offence(relative, "; ".join(wrong)))
    blank_std = release.integrity.blank_std
    if facts.std_8bit < blank_std:
        units = "" if facts.max_value == 255 else f" = {facts.std:.1f} of {facts.max_value:.0f}"
        problems["blank"].append(Offence(
            relative, f"blank or constant (pixel std {facts.std_8bit:.2f} grey levels of 255{units}; minimum {blank_std})"
        ))


def _check_labels(release: Release, problems: dict[str, list[Offence]], manifest_name: str) -> None:
    declared = set(release.class_names)
    columns = release.manifest.label_columns
    if not release.labelled:
        _check_no_labels(release, problems, manifest_name)
        return
    for column in columns:
        if column not in declared:
            problems["labels"].append(
                Offence(manifest_name, f"label column '{column}' is not a declared class ({', '.join(sorted(declared))})")
            )
    for name in release.class_names:
        if name not in columns:
            problems["labels"].append(Offence(manifest_name, f"declared class '{name}' has no manifest column "
                                                           "(a labelled release has a 0/1 column per class; an "
                                                           "unconditional generator's release says [release] "
                                                           "labelled = false)"))
    counts: Counter[str] = Counter()
    for row in release.manifest.rows:
        for column, value in row.labels.items():
            if value not in LABEL_VALUES:
                problems["labels"].append(Offence(row.path, f"label '{column}' is {value!r}, expected 0 or 1 (line {row.line})"))
            elif value == "1":
                counts[column] += 1
    for spec in release.classes:
        if counts[spec.name] < spec.min_count:
            problems["class_counts"].append(
                Offence(manifest_name, f"class '{spec.name}' has {counts[spec.name]} images, minimum {spec.min_count}")
            )


def _check_no_labels(release: Release, problems: dict[str, list[Offence]], manifest_name: str) -> None:
    """An unlabelled release's manifest has no class columns (nor any other column the gate does not know)."""
    for column in release.manifest.label_columns:
        if column in release.class_names:
            why = (f"column '{column}' is a class column, but release.toml declares the release unlabelled "
                   "([release] labelled = false): drop the column, or declare the release labelled")
        else:
            why = (f"column '{column}' is not a column of an unlabelled release's manifest "
                   f"(path, {', '.join(MANIFEST_INFO_COLUMNS)})")
        problems["labels"].append(Offence(manifest_name, why))


def near_duplicate_pairs(hashes: dict[str, int], max_bits: int) -> list[tuple[str, str, int]]:
    """Pairs of distinct files whose dHashes differ in at most ``max_bits`` bits."""
    names = sorted(hashes)
    if len(names) < 2:
        return []
    values = np.array([hashes[n] for n in names], dtype=np.uint64)
    pairs = []
    for i in range(len(names) - 1):
        distance = np.bitwise_count(values[i + 1 :] ^ values[i])
        for offset in np.flatnonzero(distance <= max_bits):
            j = i + 1 + int(offset)
            pairs.append((names[i], names[j], int(distance[offset])))
    return pairs
