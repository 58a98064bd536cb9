"""Finding a release by name or path.

A name is looked up in each releases folder in turn (``releases/``, then
``fixtures/releases/``, then any configured ones). A folder holding a
``release.toml`` is a release; one holding a demo ``recipe.toml`` is built into
the cache first.
"""

from __future__ import annotations

from pathlib import Path

from synthgate import demo
from synthgate.release import CONFIG_NAME


class ReleaseNotFound(LookupError):
    pass


def default_search_path(rootdir: Path, extra: list[Path]) -> list[Path]:
    return [*extra, rootdir / "releases", rootdir / "fixtures" / "releases"]


def available(search_path: list[Path]) -> dict[str, Path]:
    """Release names found on the search path (first folder wins) and where each lives."""
    found: dict[str, Path] = {}
    for folder in search_path:
        for child in sorted(folder.glob("*/")) if folder.is_dir() else []:
            if (child / CONFIG_NAME).is_file() or (child / demo.RECIPE_NAME).is_file():
                found.setdefault(child.name, child)
    return found


def resolve(name_or_path: str, search_path: list[Path], cache_dir: Path) -> Path:
    """The folder of the release to gate, building a demo release when a recipe is named."""
    as_path = Path(name_or_path).expanduser()
    if (as_path / CONFIG_NAME).is_file():
        return as_path.resolve()
    releases = available(search_path)
    if name_or_path not in releases:
        where = ", ".join(str(p) for p in search_path)
        names = ", ".join(sorted(releases)) or "none"
        raise ReleaseNotFound(f"no release named {name_or_path!r} in {where}; found: {names}")
    folder = releases[name_or_path]
    if (folder / CONFIG_NAME).is_file():
        return folder.resolve()
    return demo.build_world(cache_dir) / "releases" / name_or_path
