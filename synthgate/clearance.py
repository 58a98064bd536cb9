"""Clearance records: which bytes passed the gate, checked again before they are published.

The gate writes a record only when a complete run clears the release. The record
binds each file's sha256, the manifest's, release.toml's, the gate policy's
and the synthgate version, and carries the sha256 of its own canonical JSON so an
edited record is detected. The self-hash detects edits, not forgery (anyone can
recompute it): sign the record where its origin matters.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from synthgate import __version__
from synthgate.config.release import CONFIG_NAME, RECORD_KIND, Release, content_hash, load_release
from synthgate.config.toml import ConfigError
from synthgate.evaluation.integrity import hash_files
from synthgate.reporting.summary import portable_file
from synthgate.storage import sha256_file, write_json

RECORD_VERSION = 2
SELF_HASH = "self_sha256"


class RecordError(ValueError):
    """A record that cannot be read or is not a clearance record (a usage problem, not a mismatch)."""


@dataclass(frozen=True)
class ReleaseHashes:
    files: dict[str, str]  # relative path -> sha256, every file but release.toml, the manifest and a record
    manifest: str
    config: str
    content_hash: str


def hash_release(release: Release) -> ReleaseHashes:
    """Hash the release as it is on disk now (the same content hash the integrity scan computes)."""
    files = hash_files(release)
    return ReleaseHashes(files, sha256_file(release.manifest.file), sha256_file(release.config_file),
                         content_hash(release.manifest.file, files))


def canonical(value: dict) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def self_hash(record: dict) -> str:
    """sha256 of the canonical JSON of every field but the self-hash itself."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != SELF_HASH})).hexdigest()


def make_record(summary: dict, release: Release, policy, hashes: ReleaseHashes) -> dict:
    record = {
        "record": RECORD_KIND,
        "record_version": RECORD_VERSION,
        "verdict": summary["verdict"],
        "cleared_at": summary["generated_at"],
        "synthgate_version": __version__,
        "release": {
            "name": release.name,
            "content_hash": hashes.content_hash,
            "config_sha256": hashes.config,
            "manifest": {"path": release.manifest.file.relative_to(release.root).as_posix(), "sha256": hashes.manifest},
            "files": hashes.files,
        },
        "policy": {"file": summary["policy"]["file"], "sha256": policy.sha256, "builtin": policy.builtin},
        "gate": {
            "required": summary["required"],
            "criteria": [
                {key: c.get(key) for key in ("key", "outcome", "value", "ci_low", "ci_high", "minimum", "maximum",
                                             "judged_on", "source")}
                for c in summary["criteria"]
            ],
        },
    }
    record[SELF_HASH] = self_hash(record)
    return record


def record_clearance(summary: dict, release: Release, policy, path: Path) -> None:
    """Write the record if the summary's verdict is cleared; note in ``summary["clearance"]`` what was done and why.

    The release is hashed again here: if its files changed while the gate ran, what
    was evaluated is not what is on disk, so nothing is cleared (the verdict becomes incomplete).
    """
    if summary["verdict"] != "cleared":
        why = "the gate blocked the release" if summary["verdict"] == "blocked" else "the verdict is incomplete: " + "; ".join(summary["verdict_reasons"])
        summary["clearance"] = {"written": False, "reason": why}
        return
    hashes = hash_release(release)
    if hashes.content_hash != summary["release"]["content_hash"]:
        reason = "the release's files changed while the gate ran"
        summary["verdict"], summary["verdict_reasons"] = "incomplete", [reason]
        summary["clearance"] = {"written": False, "reason": reason}
        return
    record = make_record(summary, release, policy, hashes)
    write_json(path, record)
    summary["clearance"] = {"written": True, "path": portable_file(path), SELF_HASH: record[SELF_HASH]}
    summary["artifacts"]["clearance"] = portable_file(path)


def read_record(path: Path) -> dict:
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{path}: no clearance record here (the gate writes one only when it clears a release)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RecordError(f"{path}: cannot read the clearance record: {error}") from None
    if not isinstance(record, dict) or record.get("record") != RECORD_KIND:
        raise RecordError(f"{path}: not a synthgate clearance record")
    if record.get("record_version") != RECORD_VERSION:
        raise RecordError(f"{path}: record version {record.get('record_version')!r}; this synthgate reads version {RECORD_VERSION}")
    return record


def differences(record: dict, root: Path, policy_file: Path) -> list[str]:
    """What differs between the record and the release folder ``root`` (and the gate policy) now; empty when they match."""
    if record.get(SELF_HASH) != self_hash(record):
        return ["record was edited: its self-hash does not match its content"]
    recorded = record["release"]
    problems = []
    if sha256_file(policy_file) != record["policy"]["sha256"]:
        problems.append(f"gate policy {policy_file.name}: changed since clearance (or another policy applies now)")
    if sha256_file(root / CONFIG_NAME) != recorded["config_sha256"]:
        problems.append(f"{CONFIG_NAME}: changed (the gate configuration it was cleared under)")
    try:
        release = load_release(root)
    except ConfigError as error:
        if not problems:
            raise
        return [*problems, f"{CONFIG_NAME} no longer loads: {error}"]
    if release.name != recorded["name"]:
        problems.append(f"the record is for release {recorded['name']!r}, this is {release.name!r}")
    hashes = hash_release(release)
    manifest = release.manifest.file.relative_to(release.root).as_posix()
    if manifest != recorded["manifest"]["path"]:
        problems.append(f"manifest: now {manifest}, cleared as {recorded['manifest']['path']}")
    elif hashes.manifest != recorded["manifest"]["sha256"]:
        problems.append(f"{manifest}: changed (the manifest)")
    before, now = recorded["files"], hashes.files
    problems += [f"{f}: changed" for f in sorted(before.keys() & now.keys()) if before[f] != now[f]]
    problems += [f"{f}: added (not in the record)" for f in sorted(now.keys() - before.keys())]
    problems += [f"{f}: removed (in the record, not on disk)" for f in sorted(before.keys() - now.keys())]
    return problems
