"""The defects a demo recipe can plant: each turns a faithful release into one the gate must block.

Item defects change the images or labels before they are written; file defects
damage the written release (files, manifest, paths, metadata).
"""

from __future__ import annotations

import csv
import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from synthgate.demo.cohort import Item


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
    """Images labelled with a finding but drawn without it, in a share ``fraction`` of that class's positives (a
    generator that often ignores its condition): every image still looks like a chest film."""
    name = params.get("class", "soft tissue mass")
    positives = [item for item in items if item.labels[name]]
    count = round(params.get("fraction", 1.0) * len(positives))
    for index in np.sort(rng.choice(len(positives), size=count, replace=False)):
        positives[index].rerender(positives[index].spec.findings - {name})


def _finding_never_drawn(items, rng, params, world):
    """A generator that has lost a finding: every image that would show it is drawn without it (labels follow)."""
    name = params.get("class", "cardiomegaly")
    for item in items:
        if name in item.spec.findings:
            item.rerender(item.spec.findings - {name})
            item.spec = dataclasses.replace(item.spec, findings=item.spec.findings - {name})
            item.labels[name] = 0


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
    "finding-never-drawn": _finding_never_drawn,
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


def _test_images_in_release(directory: Path, rng, params, reencode: bool = False):
    """Deliver a few reference test images as if they were synthetic (as they are, or re-encoded)."""
    world = directory.parent.parent
    test_rows = _read_rows(world / "reference" / "test" / "manifest.csv")
    rows = _read_rows(directory / "manifest.csv")
    for k in rng.choice(len(test_rows), size=params.get("count", 4), replace=False):
        source = test_rows[k]
        name = f"images/from-test-{k}.png"
        if reencode:
            _reencode(world / "reference" / "test" / source["path"], directory / name)
        else:
            shutil.copyfile(world / "reference" / "test" / source["path"], directory / name)
        rows.append({column: source.get(column, "0") for column in rows[0]} | {"path": name})
    _write_rows(directory / "manifest.csv", rows)


def _reencode(source: Path, target: Path) -> None:
    """The same pixels in other bytes: the PNG saved again at another compression level."""
    original = source.read_bytes()
    with Image.open(source) as image:
        for level in (1, 9, 0):
            image.save(target, compress_level=level)
            if target.read_bytes() != original:
                return
    raise RuntimeError(f"{source}: no other PNG encoding of it was found")


def _reencoded_test_images(directory: Path, rng, params):
    """Deliver a few reference test images re-encoded (same pixels, other bytes): no file hash matches."""
    _test_images_in_release(directory, rng, params, reencode=True)


FILE_DEFECTS = {
    "reference-overlap": _reference_variant,
    "test-images-in-release": _test_images_in_release,
    "reencoded-test-images": _reencoded_test_images,
    "corrupt-file": _corrupt,
    "truncated-file": _truncate,
    "wrong-mode": _rgb,
    "wrong-bit-depth": _sixteen_bit,
    "text-metadata": _text_metadata,
    "rows-without-files": _remove_files,
    "files-without-rows": _extra_files,
    "path-escape": _escape,
}


