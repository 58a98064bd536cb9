"""Finding a release by name or path.

A name is looked up in each releases folder in turn (``--releases-dir`` folders, then
``releases/`` below the rootdir); a folder holding a ``release.toml`` is a release.
Names not found there may be demo recipes shipped with synthgate, which are built into
the cache on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synthgate.config.release import CONFIG_NAME
from synthgate.demo import world as demo


class ReleaseNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Located:
    """A release folder, and the policy its repository uses when the run names none (demo recipes: the demo's)."""

    folder: Path
    policy: Path | None = None


def default_search_path(rootdir: Path, extra: list[Path]) -> list[Path]:
    return [*extra, rootdir / "releases"]


def available(search_path: list[Path]) -> dict[str, Path | None]:
    """Release names found on the search path (first folder wins), then the demo recipes (folder None)."""
    found: dict[str, Path | None] = {}
    for folder in search_path:
        for child in sorted(folder.glob("*/")) if folder.is_dir() else []:
            if (child / CONFIG_NAME).is_file():
                found.setdefault(child.name, child)
    for name in demo.recipe_files():
        found.setdefault(name, None)
    return found


def resolve(name_or_path: str, search_path: list[Path], cache_dir: Path) -> Located:
    """The release to gate, building the demo world when a demo recipe is named."""
    as_path = Path(name_or_path).expanduser()
    if (as_path / CONFIG_NAME).is_file():
        return Located(as_path.resolve())
    releases = available(search_path)
    if name_or_path not in releases:
        where = ", ".join(str(p) for p in search_path)
        names = ", ".join(sorted(releases)) or "none"
        raise ReleaseNotFound(f"no release named {name_or_path!r} in {where} or the demo recipes; found: {names}")
    folder = releases[name_or_path]
    if folder is not None:
        return Located(folder.resolve())
    return Located(demo.build_world(cache_dir) / "releases" / name_or_path, demo.POLICY_FILE)
