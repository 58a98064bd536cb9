"""Leakage: a score is worthless from a model that saw the generator's data, or
measured on a test set that overlaps what was trained on or delivered.

Images are compared, not only names. Two sets of images share an image when a file of
one has the same bytes as a file of the other (file sha256), the same decoded pixels (a
re-encoded copy: other bytes, same picture; see :func:`synthgate.models.card.pixel_sha256`),
or is a near-duplicate of it (moved by a few pixels, noise added): the shift-tolerant pixel
similarity the memorisation checks use (:func:`synthgate.measures.distances.shift_tolerant_similarity`
on :func:`synthgate.data.imaging.load_pixels`), above :data:`NEAR_DUPLICATE_SIMILARITY`,
which real images of two different patients do not reach. Patients are compared where both
sides carry patient ids of the same data set (ids of two data sets are not comparable).
Data-set names are compared through the alias table (:mod:`synthgate.models.datasets`);
for published weights, which list no images, they are all there is.

Every check returns :class:`Findings`: the offending files (empty when clean) and a note
saying what the check rests on, or why a part of it could not run.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthgate.config.settings import PrivacySpec
from synthgate.data.collection import Collection
from synthgate.evaluation.integrity import Offence
from synthgate.models.card import ModelCard, SeenImage, pixel_sha256
from synthgate.models.datasets import is_known, leakage_overlap, underlying_datasets
from synthgate.progress import step
from synthgate.storage import atomic_write, cached_table, result_key, sha256_file

# The privacy checks' default limit: real images of two different patients stay below it
# (the demo's real-vs-real maximum is about 0.89), a copy moved by a few pixels or lightly
# noised lies above it. Fixed: a leakage check has no threshold a policy could loosen.
NEAR_DUPLICATE_SIMILARITY = PrivacySpec.pixel_similarity_max
PIXEL_HASH_CACHE = "pixel-sha256-v1"
_PIXEL_MEMO: dict[str, str | None] = {}  # file sha256 -> pixel sha256: the bytes decide the pixels
RESTS_ON_NAMES = "rests on data-set names"


class Findings(list):
    """One leakage check's offences (a list of :class:`Offence`), what it rests on (``note``),
    and ``problem`` when it could not be carried out at all (then it is truthy even if empty:
    nothing may be measured with a model whose leakage could not be checked)."""

    def __init__(self, offences: Sequence[Offence] = (), note: str = "", problem: str = "", missing: str = ""):
        super().__init__(offences)
        self.note = note
        self.problem = problem
        self.missing = missing  # the input whose absence kept it from running (the policy may accept that)

    def __bool__(self) -> bool:
        return len(self) > 0 or bool(self.problem)


def not_checked(why: str, missing: str = "") -> Findings:
    """A check that did not run: not applicable (``missing`` empty), or lacking an input (a failure unless accepted)."""
    return Findings(note=f"not checked: {why}", missing=missing)


# --------------------------------------------------------------------------- image sets


@dataclass(frozen=True)
class ImageSet:
    """One side of a comparison: each image's name, file hash, pixel hash and patient.

    ``pixels`` (for the near-duplicate search) are those of the images at ``pixel_rows``
    (every image, unless some are not at hand: a foreign checkpoint's list names files
    that may be elsewhere); None when no image is at hand.
    """

    what: str
    names: tuple[str, ...]
    file_sha256: tuple[str, ...]
    pixel_sha256: tuple[str | None, ...]
    patients: tuple[str | None, ...]
    datasets: tuple[str, ...]
    pixels: np.ndarray | None = None
    pixel_rows: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def of_collection(cls, collection: Collection, what: str, pixel_hashes: Sequence[str | None],
                      pixels: np.ndarray | None = None) -> ImageSet:
        if pixels is not None and len(pixels) != len(collection):
            raise ValueError(f"{what}: {len(pixels)} pixel arrays for {len(collection)} images")
        return cls(
            what=what,
            names=tuple(str(p) for p in collection.paths),
            file_sha256=tuple(collection.digests),
            pixel_sha256=tuple(pixel_hashes),
            patients=tuple(None if g.startswith("image:") else g for g in collection.groups),
            datasets=tuple(collection.datasets),
            pixels=pixels,
            pixel_rows=tuple(range(len(collection))) if pixels is not None else (),
        )

    @classmethod
    def of_seen(cls, images: Sequence[SeenImage], what: str, datasets: Sequence[str],
                pixels: np.ndarray | None = None, pixel_rows: Sequence[int] = ()) -> ImageSet:
        """The images a model card lists (named by their recorded path, else by their hash)."""
        return cls(
            what=what,
            names=tuple(image.path or f"sha256:{image.file_sha256}" for image in images),
            file_sha256=tuple(image.file_sha256 for image in images),
            pixel_sha256=tuple(image.pixel_sha256 for image in images),
            patients=tuple(image.patient_id for image in images),
            datasets=tuple(datasets),
            pixels=pixels,
            pixel_rows=tuple(pixel_rows),
        )

    def concat(self, other: ImageSet, what: str) -> ImageSet:
        both = self.pixels is not None and other.pixels is not None
        return ImageSet(
            what=what,
            names=self.names + other.names,
            file_sha256=self.file_sha256 + other.file_sha256,
            pixel_sha256=self.pixel_sha256 + other.pixel_sha256,
            patients=self.patients + other.patients,
            datasets=tuple(dict.fromkeys(self.datasets + other.datasets)),
            pixels=np.concatenate([self.pixels, other.pixels]) if both else None,
            pixel_rows=self.pixel_rows + tuple(len(self) + r for r in other.pixel_rows) if both else (),
        )

    @property
    def has_patients(self) -> bool:
        return any(p is not None for p in self.patients)


def pixel_hashes(collection: Collection, cache_dir: Path | None = None) -> tuple[str | None, ...]:
    """Each image's decoded-pixel sha256 (None where it does not decode), cached by file sha256.

    Decoding every image is the cost; the hashes are kept per collection in ``cache_dir``
    (the file's sha256 decides its pixels, so a cached entry never goes stale).
    """
    cache_file = Path(cache_dir) / PIXEL_HASH_CACHE / f"{collection.fingerprint[:32]}.json" if cache_dir else None
    missing = {d for d in collection.digests if d not in _PIXEL_MEMO}
    if missing and cache_file is not None and cache_file.is_file():
        try:
            stored = json.loads(cache_file.read_text())
            _PIXEL_MEMO.update({k: v for k, v in stored.items() if isinstance(k, str) and (v is None or isinstance(v, str))})
        except (OSError, ValueError):
            pass  # a damaged cache is recomputed
        missing = {d for d in collection.digests if d not in _PIXEL_MEMO}
    if missing:
        with step(f"hashing the decoded pixels of {len(missing):,} images of {collection.name}", total=len(missing)) as progress:
            for digest, path in zip(collection.digests, collection.paths):
                if digest in missing and digest not in _PIXEL_MEMO:
                    _PIXEL_MEMO[digest] = pixel_sha256(path)
                    progress.advance()
        if cache_file is not None:
            atomic_write(cache_file, json.dumps({d: _PIXEL_MEMO[d] for d in collection.digests}).encode())
    return tuple(_PIXEL_MEMO[d] for d in collection.digests)


def images_at_hand(images: Sequence[SeenImage]) -> list[int]:
    """Which listed images still lie at their recorded path with the recorded bytes."""
    rows = []
    for k, image in enumerate(images):
        path = Path(image.path) if image.path else None
        try:
            if path is not None and path.is_file() and sha256_file(path) == image.file_sha256:
                rows.append(k)
        except OSError:
            continue
    return rows


def listed_collection(images: Sequence[SeenImage], rows: Sequence[int], name: str) -> Collection:
    """The listed images at ``rows`` as a (label-free) collection, to load their pixels."""
    chosen = [images[k] for k in rows]
    return Collection(
        name=name, datasets=(), paths=tuple(Path(i.path) for i in chosen), digests=tuple(i.file_sha256 for i in chosen),
        labels=np.zeros((len(chosen), 0), dtype=np.int64), classes=(),
        groups=tuple(i.patient_id or f"image:{i.path}" for i in chosen),
    )


# --------------------------------------------------------------------------- the checks


def shared_images(first: ImageSet, second: ImageSet, max_shift: int = 4, near_duplicates: bool = True,
                  threshold: float = NEAR_DUPLICATE_SIMILARITY, cache_dir: Path | None = None) -> Findings:
    """Images of ``second`` that are images of ``first``: same file, same pixels, or (if searched) a near-duplicate.

    Each offence names the image of ``second`` and the image of ``first`` it matches. With
    ``cache_dir``, each image's near-duplicate search is kept by its pixels' hash (see
    ``_near_duplicates``).
    """
    by_file, by_pixels = {}, {}
    for name, digest, pixels in zip(first.names, first.file_sha256, first.pixel_sha256):
        by_file.setdefault(digest, name)
        if pixels is not None:
            by_pixels.setdefault(pixels, name)
    found: dict[int, str] = {}
    for k, (digest, pixels) in enumerate(zip(second.file_sha256, second.pixel_sha256)):
        if digest in by_file:
            found[k] = f"byte-identical to {by_file[digest]} ({first.what})"
        elif pixels is not None and pixels in by_pixels:
            found[k] = f"the same decoded pixels as {by_pixels[pixels]} ({first.what}), in other bytes: a re-encoded copy"
    basis = "file sha256 and decoded-pixel sha256"
    notes = []
    if near_duplicates:
        searched, gap = _near_duplicates(first, second, found, max_shift, threshold, cache_dir)
        if searched is not None:
            found.update(searched)
            basis += f", and near-duplicate search (pixel similarity above {threshold:g}, shifts up to {max_shift} px)"
        if gap:
            notes.append(gap)
    unhashed = sum(p is None for p in first.pixel_sha256 + second.pixel_sha256)
    if unhashed:
        notes.append(f"{unhashed} images have no decoded-pixel hash (not decodable, or not recorded)")
    note = f"{second.what} ({len(second)}) vs {first.what} ({len(first)}): compared by {basis}"
    offences = [Offence(second.names[k], found[k]) for k in sorted(found)]
    return Findings(offences, "; ".join([note, *notes]))


def _near_duplicates(first: ImageSet, second: ImageSet, found: dict[int, str], max_shift: int,
                     threshold: float, cache_dir: Path | None) -> tuple[dict[int, str] | None, str]:
    """Near-duplicates of ``first`` among the images of ``second`` not matched already (None if not searched),
    and a note on the images the search could not include.

    An image's best match depends only on its own pixels and on ``first`` (the search takes
    each query alone), so with ``cache_dir`` it is kept by the image's pixel hash, per
    ``first`` and shift: a release that differs from one gated before in a few images
    searches for those few only.
    """
    for side in (first, second):
        if side.pixels is None or not side.pixel_rows:
            return None, f"near-duplicates not searched: the images of {side.what} are not at hand"
    if len(first.pixel_rows) < 2:  # similarity is measured on residuals from the mean image: one image has none
        return None, f"near-duplicates not searched: {first.what} has fewer than 2 images at hand"
    gaps = [f"{len(s) - len(s.pixel_rows)} of {len(s)} images of {s.what}" for s in (first, second)
            if len(s.pixel_rows) < len(s)]
    gap = f"near-duplicate search without {' and '.join(gaps)} (not at hand; compared by hash only)" if gaps else ""
    queries = [(position, row) for position, row in enumerate(second.pixel_rows) if row not in found]
    key = result_key("near-duplicates", repr(first.names), repr(first.pixel_sha256), repr(first.pixel_rows),
                     repr(first.pixels.shape), str(max_shift))
    with cached_table(cache_dir, "near-duplicates", key) if cache_dir else contextlib.nullcontext({}) as kept:
        hashes = [second.pixel_sha256[row] for _, row in queries]  # None: no pixel hash, searched and not kept
        todo = [k for k, pixels in enumerate(hashes) if pixels is None or pixels not in kept]
        searched = {}
        if todo:
            from synthgate.measures.distances import shift_tolerant_similarity

            similarity, index = shift_tolerant_similarity(second.pixels[[queries[k][0] for k in todo]], first.pixels,
                                                          max_shift=max_shift)
            searched = {k: (float(value), int(match)) for k, value, match in zip(todo, similarity, index)}
            kept.update({hashes[k]: found for k, found in searched.items() if hashes[k] is not None})
    result = {}
    for k, (_, row) in enumerate(queries):
        value, match = searched[k] if k in searched else kept[hashes[k]]
        if value > threshold:
            result[row] = (f"a near-duplicate of {first.names[first.pixel_rows[match]]} ({first.what}): "
                           f"pixel similarity {value:.3f} > {threshold:g}")
    return result, gap


def shared_patients(first: ImageSet, second: ImageSet) -> Findings:
    """Patients with images on both sides, where both sides carry patient ids of the same data set."""
    for side in (first, second):
        if not side.has_patients:
            return not_checked(f"{side.what} carry no patient ids", missing="patient_ids")
    if not same_dataset(first.datasets, second.datasets):
        return not_checked(f"{first.what} ({', '.join(first.datasets)}) and {second.what} "
                           f"({', '.join(second.datasets)}) are different data sets: their patient ids are not comparable")
    example_first = {}
    for name, patient in zip(first.names, first.patients):
        if patient is not None:
            example_first.setdefault(patient, name)
    example_second = {}
    for name, patient in zip(second.names, second.patients):
        if patient is not None and patient in example_first:
            example_second.setdefault(patient, name)
    offences = [Offence(f"patient {patient}", f"has images in {first.what} ({example_first[patient]}) and in "
                                              f"{second.what} ({example_second[patient]})")
                for patient in sorted(example_second)]
    unknown = sum(p is None for p in first.patients + second.patients)
    note = f"patient ids of {first.what} and {second.what} compared ({', '.join(first.datasets)})"
    return Findings(offences, note + (f"; {unknown} images carry no patient id" if unknown else ""))


def same_dataset(first: Sequence[str], second: Sequence[str]) -> bool:
    """Whether two lists of data-set names share an image collection (aliases and built-on included)."""
    expand = lambda names: set().union(*(underlying_datasets(n) for n in names))  # noqa: E731
    return bool(expand(first) & expand(second))


def model_saw_source(card: ModelCard, source_datasets: tuple[str, ...], images_listed: bool) -> Findings:
    """The model's training data sets that are (or are built on) the generator's source data: by name.

    ``images_listed`` says whether the model's images are compared too (else this check is all
    there is, and it says that it rests on data-set names).
    """
    unknown = sorted({n for n in (*card.training_datasets, *source_datasets) if not is_known(n)})
    notes = [f"by data-set names: model trained on {', '.join(card.training_datasets)}; "
             f"generator learned from {', '.join(source_datasets)}"]
    if not images_listed:
        notes.append(f"the model lists no images it saw ({card.source}): the model-vs-source check {RESTS_ON_NAMES}")
    if unknown:
        notes.append(f"{', '.join(repr(n) for n in unknown)} {'is' if len(unknown) == 1 else 'are'} not in synthgate's "
                     "table of known data sets: each stands for itself, so the same images under another name are "
                     "caught only image by image")
    overlap = sorted(leakage_overlap(card, source_datasets))
    if not overlap:
        return Findings(note="; ".join(notes))
    rests = "" if images_listed else f"; this {RESTS_ON_NAMES} (the model lists no images)"
    return Findings(
        [Offence(card.source, f"model was trained on {', '.join(card.training_datasets)}; {', '.join(overlap)} is also "
                              f"what the generator learned from (source_datasets: {', '.join(source_datasets)}){rests}")],
        "; ".join(notes),
    )
