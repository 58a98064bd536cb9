"""One pass over a release's files: hashes, decoding, and every integrity finding.

Each file is read once; its bytes give the content hash and the decoded image the
facts the checks need. Findings are grouped by check so that each gate test
reports exactly its own problem and nothing else.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from synthgate.data.imaging import ImageDecodeError, ImageFacts, inspect, open_image
from synthgate.storage import sha256_bytes
from synthgate.config.release import Release, content_hash, release_files, resolve_member

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


def _normalise(relative: str) -> str:
    return PurePosixPath(os.path.normpath(relative)).as_posix()


def _read(path: Path) -> tuple[str, bytes | None]:
    """Digest and bytes of a release file; a symlink is hashed by its target, never followed out."""
    if path.is_symlink() and not path.resolve().is_relative_to(path.parent.resolve()):
        return sha256_bytes(os.readlink(path).encode()), None
    data = path.read_bytes()
    return sha256_bytes(data), data


def _decode(data: bytes) -> ImageFacts | str:
    try:
        return inspect(open_image(io.BytesIO(data)))
    except ImageDecodeError as error:
        return error.reason


def scan_release(release: Release, workers: int | None = None) -> IntegrityReport:
    """Hash and inspect every file of ``release`` and collect the findings of every check."""
    problems: dict[str, list[Offence]] = {check: [] for check in CHECKS}
    manifest_name = release.manifest.file.name

    listed: dict[str, int] = {}
    refused_paths: set[str] = set()
    for row in release.manifest.rows:
        _, refused = resolve_member(release.root, row.path)
        if refused:
            problems["paths"].append(Offence(row.path, f"{refused} (manifest line {row.line})"))
            refused_paths.add(_normalise(row.path))
            continue
        relative = _normalise(row.path)
        if relative in listed:
            problems["manifest_files"].append(
                Offence(row.path, f"listed twice in the manifest (lines {listed[relative]} and {row.line})")
            )
            continue
        listed[relative] = row.line

    on_disk = set(release_files(release))
    for relative, line in listed.items():
        if relative not in on_disk:
            problems["manifest_files"].append(Offence(relative, f"in the manifest (line {line}) but no such file"))
    for relative in sorted(on_disk - set(listed) - refused_paths):
        problems["manifest_files"].append(Offence(relative, "file in the release folder but not in the manifest"))

    readable = sorted(on_disk)
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        reads = dict(zip(readable, pool.map(lambda r: _read(release.root / r), readable)))
        to_decode = [r for r in readable if r in listed and reads[r][1] is not None]
        decoded = dict(zip(to_decode, pool.map(lambda r: _decode(reads[r][1]), to_decode)))
    digests = {relative: digest for relative, (digest, _) in reads.items()}

    facts: dict[str, ImageFacts] = {}
    spec = release.images
    for relative, result in decoded.items():
        if isinstance(result, str):
            problems["decode"].append(Offence(relative, result))
            continue
        facts[relative] = result
        if (result.width, result.height) != (spec.width, spec.height):
            problems["size"].append(
                Offence(relative, f"{result.width}x{result.height}, declared {spec.width}x{spec.height}")
            )
        if result.mode != spec.mode or result.bit_depth != spec.bit_depth:
            problems["mode"].append(
                Offence(relative, f"mode {result.mode} ({result.bit_depth}-bit), declared {spec.mode} ({spec.bit_depth}-bit)")
            )
        if result.std < release.integrity.blank_std:
            problems["blank"].append(Offence(relative, f"blank or constant (pixel std {result.std:.2f})"))
        if result.metadata:
            problems["metadata"].append(Offence(relative, f"embedded metadata: {', '.join(result.metadata)}"))

    first_with_digest: dict[str, str] = {}
    for relative in sorted(facts):
        digest = digests[relative]
        if digest in first_with_digest:
            problems["exact_duplicates"].append(Offence(relative, f"byte-identical to {first_with_digest[digest]}"))
        else:
            first_with_digest[digest] = relative

    _check_labels(release, problems, manifest_name)
    return IntegrityReport(
        content_hash=content_hash(release.manifest.file, digests),
        file_digests=digests,
        facts=facts,
        problems=problems,
        near_duplicates=near_duplicate_pairs(
            {r: facts[r].dhash for r in first_with_digest.values()}, release.integrity.near_duplicate_bits
        ),
    )


def _check_labels(release: Release, problems: dict[str, list[Offence]], manifest_name: str) -> None:
    declared = set(release.class_names)
    columns = release.manifest.label_columns
    for column in columns:
        if column not in declared:
            problems["labels"].append(
                Offence(manifest_name, f"label column '{column}' is not a declared class ({', '.join(sorted(declared))})")
            )
    for name in release.class_names:
        if name not in columns:
            problems["labels"].append(Offence(manifest_name, f"declared class '{name}' has no manifest column"))
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
