"""The demo: a phantom 'world' of real data and recipes for releases that must pass or fail.

``world.toml`` (beside this module) says how the real data is drawn (a generator-source
site and a disjoint reference site, split by patient); each ``recipes/NAME.toml`` says
how a synthetic release is made from it and, for a defect release, which defect to plant
and which checks must block it. Both ship with the package. Everything is built
deterministically into the cache (never into git), once per content of those files and
of the code that draws the images.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np

from synthgate.config.toml import ConfigError, Table, read_toml
from synthgate.demo.cohort import cohort_items, split_by_patient, write_collection
from synthgate.demo.defects import FILE_DEFECTS, ITEM_DEFECTS
from synthgate.progress import step
from synthgate.storage import build_once

DEMO_DIR = Path(__file__).resolve().parent
WORLD_FILE = DEMO_DIR / "world.toml"
RECIPES_DIR = DEMO_DIR / "recipes"
POLICY_FILE = DEMO_DIR / "policy.toml"  # the demo team's gate policy

# --------------------------------------------------------------------------- building


def recipe_files() -> dict[str, Path]:
    """Every demo recipe by release name."""
    return {p.stem: p for p in sorted(RECIPES_DIR.glob("*.toml"))}


def _merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def load_recipe(name: str) -> dict:
    """A recipe with its ``base`` recipe merged in (one level of inheritance is all the demo needs)."""
    path = recipe_files()[name]
    recipe = read_toml(path)
    base = recipe.pop("base", None)
    if base is not None:
        if base not in recipe_files():
            raise ConfigError(path, "base", f"no recipe named {base!r}")
        recipe = _merge(load_recipe(base), recipe)
    return recipe


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in [WORLD_FILE, *recipe_files().values()]:
        digest.update(path.name.encode() + path.read_bytes())
    for module in sorted(DEMO_DIR.glob("*.py")):
        digest.update(module.read_bytes())
    return digest.hexdigest()[:16]


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _toml_value(key)


def dump_toml(data: dict, prefix: str = "") -> str:
    """Write nested tables as TOML (the stdlib reads TOML but does not write it)."""
    scalars = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    lines = ([f"[{prefix}]"] if prefix and scalars else []) + scalars
    for key, value in data.items():
        if isinstance(value, dict):
            lines += ["", dump_toml(value, f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key))]
    return "\n".join(lines).strip() + "\n"


def _build_release(world: Path, name: str, recipe: dict, size: int, rng_seed: int, drawn: dict, encoded: dict) -> None:
    target = world / "releases" / name
    synthesis = Table(recipe.get("synthesis", {}), recipe_files()[name], "synthesis")
    seed = synthesis.get("seed", int)
    size = synthesis.get("image_size", int, size)  # a release may be drawn larger than the world (e.g. 512 px)
    _, items = cohort_items(synthesis, size, seed, prefix="synthetic", drawn=drawn)
    synthesis.finish()
    defect = recipe.get("defect")
    rng = np.random.default_rng(rng_seed)
    if defect and defect["kind"] in ITEM_DEFECTS:
        ITEM_DEFECTS[defect["kind"]](items, rng, defect, world)
    labelled = recipe["release"].get("release", {}).get("labelled", True)
    write_collection(target, items, with_patients=False, with_labels=labelled, encoded=encoded)
    if defect and defect["kind"] in FILE_DEFECTS:
        FILE_DEFECTS[defect["kind"]](target, rng, defect)
    (target / "release.toml").write_text(
        f"# Built by `synthgate demo` from the demo recipe {name}.toml; do not edit.\n"
        + dump_toml(_merge(recipe["release"], {"release": {"name": name}}))
    )



def build_world(cache_dir: Path) -> Path:
    """Build (once) the demo world and every recipe's release; return the world folder."""
    fingerprint = _fingerprint()

    def build(world: Path) -> None:
        with step(f"building the demo world (phantom data and {len(recipe_files())} releases) into {cache_dir}"):
            _build_into(world)

    return build_once(Path(cache_dir) / "demo" / fingerprint, build, fingerprint)


def _build_into(world: Path) -> None:
    spec_file = WORLD_FILE
    spec = Table(read_toml(spec_file), spec_file)
    seed, size = spec.get("seed", int), spec.get("image_size", int)

    source = spec.table("generator_source")
    _, source_items = cohort_items(source, size, seed, prefix="source")
    write_collection(world / "source", source_items)
    source.get("dataset", str)
    source.finish()

    archive = spec.table("generator_source_archive")  # the unlabelled releases' generator source (site B)
    _, archive_items = cohort_items(archive, archive.get("image_size", int, size), seed + 2, prefix="archive")
    write_collection(world / "source-archive", archive_items)
    archive.get("dataset", str)
    archive.finish()

    reference = spec.table("reference")
    _, reference_items = cohort_items(reference, size, seed + 1, prefix="ref")
    train, test = split_by_patient(reference_items, reference.get("test_fraction", float), seed)
    reference.get("dataset", str)
    reference.finish()
    spec.finish()
    write_collection(world / "reference" / "train", train)
    write_collection(world / "reference" / "test", test)

    drawn, encoded = {}, {}  # most releases are the demo's cohort with one defect: drawn and encoded once
    for index, name in enumerate(recipe_files()):
        _build_release(world, name, load_recipe(name), size, seed + 100 + index, drawn, encoded)


def expected_outcome(name: str) -> dict:
    """The recipe's ``[expect]`` table: ``cleared = true`` or ``blocked_by = [test names]``."""
    return load_recipe(name).get("expect", {})
