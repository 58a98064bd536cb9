"""Cohorts of phantom images on their way to disk: the items a demo collection is made of.

Shared by the demo world (real reference and source data), the release recipes and
their defects, so that every collection is written the same way (images + manifest).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from synthgate.config.toml import Table
from synthgate.demo import phantoms, sites


@dataclass
class Item:
    """One image to be written: where, what pixels, which labels, which patient."""

    path: str
    pixels: np.ndarray
    labels: dict[str, int]
    patient_id: str
    seed: int
    spec: sites.PhantomSpec | None = None
    site: str = "site-a"

    def rerender(self, findings: frozenset[str]) -> None:
        """Draw the same image again with other findings (the labels are left as they are)."""
        spec = dataclasses.replace(self.spec, findings=frozenset(findings))
        self.pixels = phantoms.render_spec(spec, site=self.site, size=self.pixels.shape[0])




def cohort_items(section: Table, size: int, seed: int, prefix: str, drawn: dict | None = None) -> tuple[str, list[Item]]:
    """The items of a cohort section (site, patients, images_per_patient) drawn at ``size`` px.

    ``drawn`` (a dict kept by the caller) remembers what was rendered: many demo releases are one
    cohort with a different defect, and rendering is most of the cost of building the world. Each
    call gets its own items and pixel arrays, so a defect never changes another release's images.
    """
    site = section.get("site", str, choices=sites.SITES)
    n_patients = section.get("patients", int)
    images_per_patient = tuple(section.get_list("images_per_patient", int))
    key = (site, n_patients, images_per_patient, seed, prefix, size)
    if drawn is None or key not in drawn:
        specs = sites.sample_cohort(site, n_patients=n_patients, images_per_patient=images_per_patient, seed=seed,
                                    id_prefix=prefix)
        rendered = [(spec, phantoms.render_spec(spec, site=site, size=size)) for spec in specs]
        if drawn is None:
            drawn = {}
        drawn[key] = rendered
    items = [
        Item(
            path=f"images/{spec.patient_id}-{index:05d}.png",
            pixels=pixels.copy(),
            labels={name: int(name in spec.findings) for name in sites.FINDINGS},
            patient_id=spec.patient_id,
            seed=spec.image_seed,
            spec=spec,
            site=site,
        )
        for index, (spec, pixels) in enumerate(drawn[key])
    ]
    return site, items


def png_bytes(pixels: np.ndarray, encoded: dict | None = None) -> bytes:
    """``pixels`` encoded as PNG (Pillow's defaults); ``encoded`` (kept by the caller) reuses the bytes of
    identical pixels, which the demo's releases share by the thousand."""
    key = hashlib.sha256(pixels.tobytes() + repr((pixels.shape, pixels.dtype.str)).encode()).digest()
    if encoded is not None and key in encoded:
        return encoded[key]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    if encoded is not None:
        encoded[key] = buffer.getvalue()
    return buffer.getvalue()


def write_collection(directory: Path, items: list[Item], with_patients: bool = True, with_labels: bool = True,
                     encoded: dict | None = None) -> None:
    """Write images and a manifest (path, [patient_id], seed, [one 0/1 column per class]).

    ``with_labels=False`` writes an unlabelled release's manifest: no class columns at all.
    ``encoded``: see ``png_bytes``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for item in items:
        target = directory / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png_bytes(item.pixels, encoded))
    classes = list(items[0].labels) if with_labels else []
    with open(directory / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", *(["patient_id"] if with_patients else []), "seed", *classes])
        for item in items:
            patient = [item.patient_id] if with_patients else []
            writer.writerow([item.path, *patient, item.seed, *(item.labels[c] for c in classes)])


def split_by_patient(items: list[Item], test_fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    patients = sorted({item.patient_id for item in items})
    rng = np.random.default_rng(seed)
    test_patients = set(rng.choice(patients, size=round(len(patients) * test_fraction), replace=False))
    return [i for i in items if i.patient_id not in test_patients], [i for i in items if i.patient_id in test_patients]


