"""Paths as the customer reads them: relative to the release, or to a named data set's folder.

The report, the summary, the tables and the clearance record travel with the images to
people who do not have our machines, so no file is ever named by a machine path (the
cache, a temporary folder, a home directory). A release image is named by its path
inside the release (``images/0001.png``); an image of a real data set by that set and
its path inside the set's folder (``reference test: images/0001.png``); a folder by
its path relative to the release, as release.toml would write it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# The real image sets a release may name, in the words the report uses.
REFERENCE_TRAIN, REFERENCE_TEST, GENERATOR_SOURCE = "reference train", "reference test", "generator source"


class Places:
    """The folders a release refers to, and the readable name of any file in them."""

    def __init__(self, release):
        self.release_root = Path(release.root).resolve()
        self.roots: list[tuple[str, Path]] = []  # (label, folder), the release itself labelled ""
        if release.reference is not None:
            self.roots += [(REFERENCE_TRAIN, Path(release.reference.train.path).resolve()),
                           (REFERENCE_TEST, Path(release.reference.test.path).resolve())]
        if release.source_images is not None:
            self.roots.append((GENERATOR_SOURCE, Path(release.source_images.path).resolve()))
        self.roots.append(("", self.release_root))
        # deepest folder first: a reference folder inside the release is named as the reference
        self.roots.sort(key=lambda item: len(item[1].parts), reverse=True)

    def name(self, path) -> str:
        """``images/0001.png`` (in the release), ``reference test: images/0001.png``, else the file's name."""
        absolute = Path(os.path.abspath(path))
        for label, root in self.roots:
            if absolute == root or root in absolute.parents:
                inside = absolute.relative_to(root).as_posix()
                return f"{label}: {inside}" if label else inside
        return absolute.name

    def folder(self, path) -> str:
        """A folder relative to the release (``../nih/train``), as release.toml would write it."""
        return Path(os.path.relpath(Path(path).resolve(), self.release_root)).as_posix()

    def replacements(self) -> list[list[str]]:
        """``[folder, label]`` pairs for :func:`scrub`, deepest folder first (plain data: it crosses xdist)."""
        return [[str(root), label] for label, root in self.roots]

    def file(self, name: str) -> Path:
        """The file a :meth:`name` names (for thumbnails, on the machine that ran the gate)."""
        label, _, inside = name.rpartition(": ")
        roots = dict((lab, root) for lab, root in self.roots)
        return roots.get(label, self.release_root) / inside


def scrub(value, replacements: list[list[str]]):
    """Every string in a plain structure with each absolute folder (``[folder, label]``) named as the report names it."""
    if isinstance(value, dict):
        return {k: scrub(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, replacements) for v in value]
    if isinstance(value, str) and "/" in value:
        for folder, label in replacements:
            value = re.sub(re.escape(folder) + r"(/|(?![\w-]|\.\w))",
                           lambda m, label=label: (f"{label}: " if label else "") if m.group(1) else (label or "the release folder"), value)
        return value
    return value
