"""The per-release evaluation a gate session shares between its tests.

Tests ask it for results and assert; they never compute. Every result is a
cached property: computed on first use, once per session.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from synthgate.integrity import IntegrityReport, scan_release
from synthgate.release import Release


@dataclass(frozen=True)
class GateOptions:
    cache_dir: Path
    weights_dir: Path | None = None
    device: str | None = None


def default_cache_dir() -> Path:
    if "SYNTHGATE_CACHE" in os.environ:
        return Path(os.environ["SYNTHGATE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "synthgate"


class ReleaseEvaluation:
    def __init__(self, release: Release, options: GateOptions):
        self.release = release
        self.options = options

    @cached_property
    def integrity(self) -> IntegrityReport:
        return scan_release(self.release)

    @property
    def class_counts(self) -> dict[str, int]:
        return {
            name: sum(row.labels.get(name) == "1" for row in self.release.manifest.rows)
            for name in self.release.class_names
        }
