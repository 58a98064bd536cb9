"""The demo: a phantom 'world' of real data and recipes for releases that must pass or fail.

``fixtures/demo/world.toml`` says how the real data is drawn (a generator-source
site and a disjoint reference site, split by patient); each
``fixtures/releases/NAME/recipe.toml`` says how a synthetic release is made from it
and, for a defect release, which defect to plant and which check must block it.
Everything is built deterministically into the cache (never into git), once per
content of those files and of the code that draws the images.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import os
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from synthgate import phantoms
from synthgate.config import ConfigError, Table, read_toml

RECIPE_NAME = "recipe.toml"
PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass
class Item:
    """One image to be written: where, what pixels, which labels, which patient."""

    path: str
    pixels: np.ndarray
    labels: dict[str, int]
    patient_id: str
    seed: int
    spec: phantoms.PhantomSpec | None = None
    site: str = "site-a"

    def rerender(self, findings: frozenset[str]) -> None:
        """Draw the same image again with other findings (the labels are left as they are)."""
        spec = dataclasses.replace(self.spec, findings=frozenset(findings))
        self.pixels = phantoms.render_spec(spec, site=self.site, size=self.pixels.shape[0])


# --------------------------------------------------------------------------- world


def _cohort_items(section: Table, size: int, seed: int, prefix: str) -> tuple[str, list[Item]]:
    site = section.get("site", str, choices=phantoms.SITES)
    specs = phantoms.sample_cohort(
        site,
        n_patients=section.get("patients", int),
        images_per_patient=tuple(section.get_list("images_per_patient", int)),
        seed=seed,
        id_prefix=prefix,
    )
    items = [
        Item(
            path=f"images/{spec.patient_id}-{index:05d}.png",
            pixels=phantoms.render_spec(spec, site=site, size=size),
            labels={name: int(name in spec.findings) for name in phantoms.FINDINGS},
            patient_id=spec.patient_id,
            seed=spec.image_seed,
            spec=spec,
            site=site,
        )
        for index, spec in enumerate(specs)
    ]
    return site, items


def write_collection(directory: Path, items: list[Item], with_patients: bool = True) -> None:
    """Write images and a manifest (path, [patient_id], seed, one 0/1 column per class)."""
    directory.mkdir(parents=True, exist_ok=True)
    for item in items:
        target = directory / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(item.pixels).save(target)
    classes = list(items[0].labels)
    with open(directory / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", *(["patient_id"] if with_patients else []), "seed", *classes])
        for item in items:
            patient = [item.patient_id] if with_patients else []
            writer.writerow([item.path, *patient, item.seed, *(item.labels[c] for c in classes)])


def _split_by_patient(items: list[Item], test_fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    patients = sorted({item.patient_id for item in items})
    rng = np.random.default_rng(seed)
    test_patients = set(rng.choice(patients, size=round(len(patients) * test_fraction), replace=False))
    return [i for i in items if i.patient_id not in test_patients], [i for i in items if i.patient_id in test_patients]


# --------------------------------------------------------------------------- defects


def _pick(items: list[Item], rng: np.random.Generator, count: int = 1) -> list[Item]:
    return [items[i] for i in rng.choice(len(items), size=count, replace=False)]


def _wrong_size(items, rng, params, world):
    for item in _pick(items, rng, params.get("count", 2)):
        item.pixels = np.asarray(Image.fromarray(item.pixels).resize((item.pixels.shape[1] + 8, item.pixels.shape[0] + 8)))


def _blank(items, rng, params, world):
    for k, item in enumerate(_pick(items, rng, params.get("count", 2))):
        item.pixels = np.full_like(item.pixels, 100 + k)


def _duplicates(items, rng, params, world):
    for k, item in enumerate(_pick(items, rng, params.get("count", 2))):
        items.append(Item(f"images/copy_{k}.png", item.pixels.copy(), dict(item.labels), item.patient_id, item.seed))


def _unknown_label(items, rng, params, world):
    column = params.get("column", "pneumothorax")
    for item in items:
        item.labels[column] = int(rng.random() < 0.2)


def _drop_class(items, rng, params, world):
    """Keep only ``keep`` positives of one class, so that it falls below its minimum count."""
    name, keep = params.get("class", "effusion"), params.get("keep", 3)
    positives = [item for item in items if item.labels[name]]
    for item in positives[keep:]:
        items.remove(item)


def _shuffle_labels(items, rng, params, world):
    """Labels permuted across images: each label vector now belongs to another image."""
    order = rng.permutation(len(items))
    shuffled = [dict(items[i].labels) for i in order]
    for item, labels in zip(items, shuffled):
        item.labels = labels


def _finding_missing(items, rng, params, world):
    """Images labelled with a finding but drawn without it (a generator ignoring its condition)."""
    name = params.get("class", "soft tissue mass")
    for item in items:
        if item.labels[name]:
            item.rerender(item.spec.findings - {name})


def _single_class(items, rng, params, world):
    """Every image labelled with exactly one finding, the images as drawn (a generator asked for one class only
    that ignored the request): the label set collapses while the images keep the source's mix."""
    name = params.get("class", "effusion")
    for item in items:
        item.labels = {label: int(label == name) for label in item.labels}


def _jitter(pixels: np.ndarray, rng, shift: int, noise: float) -> np.ndarray:
    """Move an image by up to ``shift`` pixels and add Gaussian noise: a near-copy, not a copy."""
    dy, dx = rng.integers(-shift, shift + 1, size=2)
    moved = np.roll(pixels.astype(np.float32), (int(dy), int(dx)), axis=(0, 1))
    return np.clip(moved + rng.normal(0, noise, pixels.shape), 0, 255).astype(np.uint8)


def _near_copies(items, rng, params, world):
    """Replace a fraction of the release with near-copies of real images (``of``: source or reference)."""
    folder = world / ("source" if params.get("of", "source") == "source" else "reference/train")
    source_rows = _read_rows(folder / "manifest.csv")
    count = round(params.get("fraction", 0.15) * len(items))
    for item, k in zip(_pick(items, rng, count), rng.choice(len(source_rows), size=count, replace=False)):
        row = source_rows[k]
        original = np.asarray(Image.open(folder / row["path"]))
        item.pixels = _jitter(original, rng, params.get("shift", 2), params.get("noise", 2.0))
        item.labels = {name: int(row[name]) for name in item.labels}


def _mode_collapse(items, rng, params, world):
    """A handful of distinct images, every other image a jittered repeat of one of them."""
    base = _pick(items, rng, params.get("distinct", 12))
    for k, item in enumerate(items):
        if item not in base:
            model = base[k % len(base)]
            item.pixels, item.labels = _jitter(model.pixels, rng, 1, 2.0), dict(model.labels)


def _degrade(items, rng, params, world):
    """Blur and noise every image: plausible labels, visibly poor images."""
    from scipy.ndimage import gaussian_filter

    for item in items:
        blurred = gaussian_filter(item.pixels.astype(np.float32), params.get("blur", 1.2))
        item.pixels = np.clip(blurred + rng.normal(0, params.get("noise", 12.0), blurred.shape), 0, 255).astype(np.uint8)


ITEM_DEFECTS = {
    "near-copies": _near_copies,
    "mode-collapse": _mode_collapse,
    "degraded": _degrade,
    "shuffled-labels": _shuffle_labels,
    "finding-missing": _finding_missing,
    "single-class": _single_class,
    "wrong-size": _wrong_size,
    "blank": _blank,
    "exact-duplicates": _duplicates,
    "unknown-label": _unknown_label,
    "class-below-minimum": _drop_class,
}


def _files(directory: Path, rng: np.random.Generator, count: int = 1) -> list[Path]:
    images = sorted((directory / "images").glob("*.png"))
    return [images[i] for i in rng.choice(len(images), size=count, replace=False)]


def _corrupt(directory, rng, params):
    for path in _files(directory, rng, params.get("count", 2)):
        data = bytearray(path.read_bytes())
        data[:64] = rng.integers(0, 256, size=64, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(data))


def _truncate(directory, rng, params):
    for path in _files(directory, rng, params.get("count", 2)):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


def _rgb(directory, rng, params):
    for path in _files(directory, rng, params.get("count", 2)):
        Image.open(path).convert("RGB").save(path)


def _sixteen_bit(directory, rng, params):
    for path in _files(directory, rng, params.get("count", 2)):
        pixels = np.asarray(Image.open(path)).astype(np.uint16) * 257
        Image.fromarray(pixels).save(path)


def _text_metadata(directory, rng, params):
    for path in _files(directory, rng, params.get("count", 2)):
        info = PngImagePlugin.PngInfo()
        info.add_text("PatientName", "DOE^JANE")
        Image.open(path).save(path, pnginfo=info)


def _remove_files(directory, rng, params):
    for path in _files(directory, rng, params.get("count", 3)):
        path.unlink()


def _extra_files(directory, rng, params):
    for k, path in enumerate(_files(directory, rng, params.get("count", 3))):
        Image.fromarray(np.asarray(Image.open(path))[::-1].copy()).save(directory / "images" / f"unlisted_{k}.png")


def _rewrite_path(directory: Path, old: str, new: str) -> None:
    rows = _read_rows(directory / "manifest.csv")
    for row in rows:
        row["path"] = new if row["path"] == old else row["path"]
    _write_rows(directory / "manifest.csv", rows)


def _read_rows(manifest: Path) -> list[dict]:
    with open(manifest, newline="") as handle:
        return list(csv.DictReader(handle))


def _write_rows(manifest: Path, rows: list[dict]) -> None:
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _escape(directory, rng, params):
    """Point manifest rows outside the release: via '../', an absolute path, or a symlink."""
    how = params["how"]
    outside = directory.parent.parent / "outside" / directory.name
    outside.mkdir(parents=True, exist_ok=True)
    for path in _files(directory, rng, params.get("count", 1)):
        relative = path.relative_to(directory).as_posix()
        target = outside / path.name
        shutil.move(path, target)
        if how == "symlink":
            path.symlink_to(target)
            continue
        # An absolute path is never followed, wherever it points: a system file makes that plain.
        new = os.path.relpath(target, directory) if how == "dotdot" else "/etc/passwd"
        _rewrite_path(directory, relative, new)


def _reference_variant(directory: Path, rng, params):
    """A copy of the reference test split that leaks: train patients, or train images, inside it."""
    world = directory.parent.parent
    variant = world / "variants" / directory.name / "test"
    shutil.copytree(world / "reference" / "test", variant)
    train_rows = _read_rows(world / "reference" / "train" / "manifest.csv")
    rows = _read_rows(variant / "manifest.csv")
    chosen = [train_rows[i] for i in rng.choice(len(train_rows), size=params.get("count", 3), replace=False)]
    if params["leak"] == "patients":  # other images, but of patients who are in train
        for row, train_row in zip(rows, chosen):
            row["patient_id"] = train_row["patient_id"]
    else:  # the very same files, under new patient ids
        for k, train_row in enumerate(chosen):
            name = f"images/leaked-{k}.png"
            shutil.copyfile(world / "reference" / "train" / train_row["path"], variant / name)
            rows.append({**train_row, "path": name, "patient_id": f"leaked-{k}"})
    _write_rows(variant / "manifest.csv", rows)


def _test_images_in_release(directory: Path, rng, params):
    """Deliver a few reference test images as if they were synthetic."""
    world = directory.parent.parent
    test_rows = _read_rows(world / "reference" / "test" / "manifest.csv")
    rows = _read_rows(directory / "manifest.csv")
    for k in rng.choice(len(test_rows), size=params.get("count", 4), replace=False):
        source = test_rows[k]
        name = f"images/from-test-{k}.png"
        shutil.copyfile(world / "reference" / "test" / source["path"], directory / name)
        rows.append({column: source.get(column, "0") for column in rows[0]} | {"path": name})
    _write_rows(directory / "manifest.csv", rows)


FILE_DEFECTS = {
    "reference-overlap": _reference_variant,
    "test-images-in-release": _test_images_in_release,
    "corrupt-file": _corrupt,
    "truncated-file": _truncate,
    "wrong-mode": _rgb,
    "wrong-bit-depth": _sixteen_bit,
    "text-metadata": _text_metadata,
    "rows-without-files": _remove_files,
    "files-without-rows": _extra_files,
    "path-escape": _escape,
}


# --------------------------------------------------------------------------- building


def fixtures_dir() -> Path:
    """The repository's ``fixtures/`` (synthgate runs from a checkout)."""
    return Path(os.environ.get("SYNTHGATE_FIXTURES", PACKAGE_DIR.parent / "fixtures"))


def recipe_dirs() -> dict[str, Path]:
    root = fixtures_dir() / "releases"
    return {p.parent.name: p.parent for p in sorted(root.glob(f"*/{RECIPE_NAME}"))}


def _merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def load_recipe(name: str) -> dict:
    """A recipe with its ``base`` recipe merged in (one level of inheritance is all the demo needs)."""
    path = recipe_dirs()[name] / RECIPE_NAME
    recipe = read_toml(path)
    base = recipe.pop("base", None)
    if base is not None:
        if base not in recipe_dirs():
            raise ConfigError(path, "base", f"no recipe named {base!r}")
        recipe = _merge(load_recipe(base), recipe)
    return recipe


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in [fixtures_dir() / "demo" / "world.toml", *sorted(fixtures_dir().glob(f"releases/*/{RECIPE_NAME}"))]:
        digest.update(path.as_posix().encode() + path.read_bytes())
    for module in ("phantoms.py", "demo.py"):
        digest.update((PACKAGE_DIR / module).read_bytes())
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


def _build_release(world: Path, name: str, recipe: dict, size: int, rng_seed: int) -> None:
    target = world / "releases" / name
    synthesis = Table(recipe.get("synthesis", {}), recipe_dirs()[name] / RECIPE_NAME, "synthesis")
    seed = synthesis.get("seed", int)
    _, items = _cohort_items(synthesis, size, seed, prefix="synthetic")
    synthesis.finish()
    defect = recipe.get("defect")
    rng = np.random.default_rng(rng_seed)
    if defect and defect["kind"] in ITEM_DEFECTS:
        ITEM_DEFECTS[defect["kind"]](items, rng, defect, world)
    write_collection(target, items, with_patients=False)
    if defect and defect["kind"] in FILE_DEFECTS:
        FILE_DEFECTS[defect["kind"]](target, rng, defect)
    (target / "release.toml").write_text(
        f"# Built by `synthgate demo` from fixtures/releases/{name}/recipe.toml; do not edit.\n"
        + dump_toml(_merge(recipe["release"], {"release": {"name": name}}))
    )


def build_once(target: Path, build, stamp: str) -> Path:
    """Build ``target`` once: ``build(staging)`` fills a sibling staging folder, which is then renamed into place.

    A reader never sees a half-built folder; a ``.complete`` file (holding ``stamp``)
    marks a finished build, which later calls return at once.
    """
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(staging)
        (staging / ".complete").write_text(stamp + "\n")
        try:
            os.replace(staging, target)
        except OSError:  # another process finished first: its build is identical
            if not (target / ".complete").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def build_world(cache_dir: Path) -> Path:
    """Build (once) the demo world and every recipe's release; return the world folder."""
    fingerprint = _fingerprint()
    return build_once(Path(cache_dir) / "demo" / fingerprint, _build_into, fingerprint)


def _build_into(world: Path) -> None:
    spec_file = fixtures_dir() / "demo" / "world.toml"
    spec = Table(read_toml(spec_file), spec_file)
    seed, size = spec.get("seed", int), spec.get("image_size", int)

    source = spec.table("generator_source")
    _, source_items = _cohort_items(source, size, seed, prefix="source")
    write_collection(world / "source", source_items)
    source.get("dataset", str)
    source.finish()

    reference = spec.table("reference")
    _, reference_items = _cohort_items(reference, size, seed + 1, prefix="ref")
    train, test = _split_by_patient(reference_items, reference.get("test_fraction", float), seed)
    reference.get("dataset", str)
    reference.finish()
    spec.finish()
    write_collection(world / "reference" / "train", train)
    write_collection(world / "reference" / "test", test)

    for index, name in enumerate(recipe_dirs()):
        _build_release(world, name, load_recipe(name), size, seed + 100 + index)


def expected_outcome(name: str) -> dict:
    """The recipe's ``[expect]`` table: ``cleared = true`` or ``blocked_by = [test names]``."""
    return load_recipe(name).get("expect", {})
