"""Deriving the study's releases from the real data: split by patient, write the parts, plant the defects.

Everything is written with synthgate's own public pieces: ``synthgate.demo.cohort``
(``Item``, ``write_collection``: images + manifest), ``synthgate.demo.world.dump_toml``
(each release.toml), ``synthgate.demo.defects.ITEM_DEFECTS`` (the defects, which work on
any images) and ``synthgate.storage.build_once`` (staging, then rename into the cache).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from synthgate.config.release import CONFIG_NAME
from synthgate.data import imaging, loading
from synthgate.data.collection import Collection
from synthgate.demo.cohort import Item, write_collection
from synthgate.demo.defects import ITEM_DEFECTS
from synthgate.demo.world import dump_toml
from synthgate.storage import build_once

if TYPE_CHECKING:
    from kermany.study import Study

HERE = Path(__file__).resolve().parent
PARTS = ("source", "held_back", "reference_train", "reference_test")
FOLDERS = {"source": "source", "reference_train": "reference/train", "reference_test": "reference/test"}
# Defect parameters that are lengths in pixels: given at 64 px, scaled to the study size.
PIXEL_LENGTHS = ("blur", "shift")
# What a built study depends on besides the study file and the data: a change to any of these rebuilds it.
BUILD_CODE = (HERE / "study.py", HERE / "build.py",
              *(Path(inspect.getfile(f)) for f in (write_collection, ITEM_DEFECTS["degraded"], dump_toml, imaging.to_grey_array)))


# --------------------------------------------------------------------------- splitting by patient


def linked_groups(collection: Collection) -> list[str]:
    """Each image's group: its patient, merged with every patient it shares a byte-identical file with."""
    parent = {g: g for g in collection.groups}

    def root(g: str) -> str:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    first_owner: dict[str, str] = {}
    for digest, group in zip(collection.digests, collection.groups):
        other = first_owner.setdefault(digest, group)
        parent[root(group)] = root(other)
    return [root(g) for g in collection.groups]


def split_by_patient(collection: Collection, fractions: dict[str, float], seed: int,
                     keep: float = 1.0) -> tuple[dict[str, np.ndarray], dict]:
    """Image indices per part, no patient group in two parts; stratified by the groups' label patterns.

    ``keep`` < 1 first draws that fraction of the groups (stratified too). Within a part
    only the first of byte-identical files is kept; the dropped copies are counted.
    """
    groups = np.asarray(linked_groups(collection))
    names, inverse = np.unique(groups, return_inverse=True)
    pattern = np.zeros((len(names), collection.labels.shape[1]), dtype=np.int64)
    np.maximum.at(pattern, inverse, collection.labels)  # a group is positive for a class if any image is
    rng = np.random.default_rng(seed)
    part_of_group = np.full(len(names), -1)
    bounds = np.cumsum([fractions[p] for p in PARTS])
    for stratum in np.unique(pattern, axis=0):
        members = np.flatnonzero((pattern == stratum).all(axis=1))
        members = rng.permutation(members)[: round(keep * len(members))]
        cuts = np.round(bounds * len(members)).astype(int)
        part_of_group[members] = np.searchsorted(cuts, np.arange(len(members)), side="right")
    parts, seen, dropped = {}, set(), {}
    for k, part in enumerate(PARTS):
        chosen = []
        for i in sorted(np.flatnonzero(part_of_group[inverse] == k), key=lambda i: str(collection.paths[i])):
            if collection.digests[i] in seen:
                dropped[part] = dropped.get(part, 0) + 1
                continue
            seen.add(collection.digests[i])
            chosen.append(i)
        parts[part] = np.asarray(chosen, dtype=int)
    report = {
        "images_in_data": len(collection),
        "patient_groups_in_data": int(len(names)),
        "patients_linked_by_identical_files": int(len(set(collection.groups)) - len(names)),
        "identical_copies_dropped": dropped,
        "parts": {part: _part_facts(collection, index) for part, index in parts.items()},
    }
    return parts, report


def _part_facts(collection: Collection, index: np.ndarray) -> dict:
    return {
        "patients": len({collection.groups[i] for i in index}),
        "images": int(len(index)),
        "positives": {c: int(collection.labels[index, k].sum()) for k, c in enumerate(collection.classes)},
    }


# --------------------------------------------------------------------------- images and releases


def grey8(path: Path, size: int) -> np.ndarray:
    """A real image as 8-bit grey at ``size`` x ``size`` (decoded by synthgate.data.imaging: 16-bit rescaled, RGB must be grey)."""
    grey, max_value = imaging.to_grey_array(imaging.open_image(path))
    if max_value != 255:
        grey = np.round(grey.astype(np.float64) / max_value * 255).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(grey))
    if grey.shape != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)  # antialiased when shrinking
    return np.asarray(image)


def flip_labels(items: list[Item], rng: np.random.Generator, params: dict, world: Path) -> None:
    """A ``fraction`` of the images get every label flipped: a generator that ignores its condition that often."""
    count = round(params.get("fraction", 0.3) * len(items))
    for k in rng.choice(len(items), size=count, replace=False):
        items[k].labels = {name: 1 - value for name, value in items[k].labels.items()}


def drop_finding(items: list[Item], rng: np.random.Generator, params: dict, world: Path) -> None:
    """A generator that never produces ``class``: the images showing it are left out of the release."""
    name = params["class"]
    items[:] = [item for item in items if not item.labels[name]]


# The demo's defect helpers work on any images: they read the generator's source at ``<world>/source``.
DEFECTS = {
    "label-noise": flip_labels,
    "finding-dropped": drop_finding,
    "near-copies": ITEM_DEFECTS["near-copies"],
    "degraded": ITEM_DEFECTS["degraded"],
    "mode-collapse": ITEM_DEFECTS["mode-collapse"],
    "shuffled-labels": ITEM_DEFECTS["shuffled-labels"],
}


def _scaled(defect: dict, size: int) -> dict:
    scaled = dict(defect)
    for key in PIXEL_LENGTHS:
        if key in scaled:
            value = scaled[key] * size / 64
            scaled[key] = max(1, round(value)) if isinstance(defect[key], int) else value
    return scaled


def _merge(base: dict, override: dict) -> dict:
    """``base`` with ``override`` merged in, table by table (neither is changed)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def release_config(study: Study, name: str) -> dict:
    """The release.toml of one derived release: the template plus what the builder knows."""
    entry = study.releases[name]
    config = _merge(study.template, {
        "release": {"name": name, "description": entry["description"], "source_datasets": [study.source_dataset],
                    "source_images": {"path": "../../source", "datasets": [study.source_dataset]}},
        "images": {"width": study.size, "height": study.size, "mode": "L"},
        "reference": {"train": {"path": "../../reference/train", "datasets": [study.reference_dataset]},
                      "test": {"path": "../../reference/test", "datasets": [study.reference_dataset]}},
        "model": {"size": study.size},
    })
    if not entry["labelled"]:  # an unconditional generator's release: no labels, so no label counts either
        config["release"]["labelled"] = False
        for table in config["classes"].values():
            table.pop("min_count", None)
    return config


def _fingerprint(study: Study, collection: Collection) -> str:
    digest = hashlib.sha256()
    digest.update(study.file.read_bytes())
    digest.update(json.dumps([study.size, study.patients, str(study.data.path)]).encode())
    for path, sha, labels in zip(collection.paths, collection.digests, collection.labels.tolist()):
        digest.update(f"{Path(path).relative_to(study.data.path).as_posix()}\t{sha}\t{labels}\n".encode())
    for module in BUILD_CODE:
        digest.update(module.read_bytes())
    return digest.hexdigest()[:16]


def build_study(cache_dir: Path, study: Study) -> Path:
    """Build (once) the study's splits and releases into ``<cache>/studies/<name>/``; return that folder."""
    collection = loading.load(study.data, study.name, study.classes)
    fingerprint = _fingerprint(study, collection)
    label = f"{study.size}px-{round(study.patients * 100)}pct-{fingerprint}"
    target = Path(cache_dir) / "studies" / study.name / label
    return build_once(target, lambda staging: _build_into(staging, study, collection), fingerprint)


def _build_into(root: Path, study: Study, collection: Collection) -> None:
    parts, report = split_by_patient(collection, study.fractions, study.seed, study.patients)
    pixels = {i: grey8(collection.paths[i], study.size) for index in parts.values() for i in index}

    def real_item(i: int) -> Item:
        labels = {c: int(collection.labels[i, k]) for k, c in enumerate(collection.classes)}
        return Item(f"images/{Path(collection.paths[i]).stem}.png", pixels[i], labels, collection.groups[i], i)

    for part, folder in FOLDERS.items():
        write_collection(root / folder, [real_item(i) for i in parts[part]])
    held_back, counts = parts["held_back"], {}
    for index, (name, entry) in enumerate(study.releases.items()):
        rng = np.random.default_rng([study.seed, 100 + index])
        order = rng.permutation(held_back)[: entry["images"]]  # all of them unless the release is a smaller delivery
        items = [Item(f"images/{k:05d}.png", pixels[i].copy(), real_item(i).labels, f"sample-{k}", k)
                 for k, i in enumerate(order)]
        if entry["defect"]:
            DEFECTS[entry["defect"]["kind"]](items, rng, _scaled(entry["defect"], study.size), root)
        target = root / "releases" / name
        write_collection(target, items, with_patients=False, with_labels=entry["labelled"])
        counts[name] = len(items)
        (target / CONFIG_NAME).write_text(
            f"# Built by studies/kermany/study.py from {study.file.name} ({study.name}); do not edit.\n"
            + dump_toml(release_config(study, name))
        )
    facts = {"study": study.name, "size": study.size, "patients": study.patients, "seed": study.seed,
             "data": str(study.data.path), "fractions": study.fractions, **report,
             "releases": {name: {"images": counts[name], "labelled": entry["labelled"], "defect": entry["defect"],
                                 "expect": entry["expect"]}
                          for name, entry in study.releases.items()}}
    (root / "study.json").write_text(json.dumps(facts, indent=2) + "\n")


def release_folders(root: Path) -> dict[str, Path]:
    """The built releases by name."""
    return {p.parent.name: p.parent for p in sorted((root / "releases").glob(f"*/{CONFIG_NAME}"))}
