"""Who is imaged where: the phantom findings, the sites, image specs and cohorts of patients.

Why: the demo's distribution-shift, label-mix and leakage checks need images that
come from more than one "site" (exposure, noise, positioning, case mix) and from
patients with several films each.  This module owns those settings and the
seeded sampling of cohorts as :class:`PhantomSpec` lists (patient ids and
findings, no pixels); :mod:`synthgate.demo.phantoms` draws the pixels of a spec.
The seed-stream constants live here, with the checks of seeds, sites and
findings, so that both modules draw from streams that never alias.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

FINDINGS: tuple[str, ...] = ("soft tissue mass", "effusion", "cardiomegaly")

# Mixed into seeds so the patient, finding and cohort streams never alias the image stream.
PATIENT_STREAM, FINDING_STREAM, COHORT_STREAM = 0x5EED_0001, 0x5EED_0002, 0x5EED_0003


@dataclass(frozen=True)
class Site:
    """Acquisition and patient-mix settings of one hospital / scanner.

    Why: a quality gate must notice when a release looks like another site
    (exposure, noise, positioning) or has another case mix, so phantoms carry
    the site's fingerprint explicitly.
    """

    name: str
    exposure: float = 0.08  # output level added to every pixel (0..1 scale)
    contrast: float = 0.85  # gain from attenuation to output level
    gamma: float = 1.0  # output curve; < 1 brightens mid-tones
    noise: float = 0.030  # sd of per-pixel noise (0..1 scale)
    texture: float = 0.035  # amplitude of smooth, low-frequency exposure texture
    offset: tuple[float, float] = (0.0, 0.0)  # mean patient shift (u, v), normalised
    shift_sd: float = 0.04  # positioning shift jitter, normalised units
    rotation_sd_deg: float = 3.0  # positioning rotation jitter
    scale: float = 1.0  # mean magnification of the patient on the detector
    scale_sd: float = 0.03  # magnification jitter
    body_size: float = 1.0  # mean body width factor of the patient mix
    body_size_sd: float = 0.06
    prevalence: tuple[tuple[str, float], ...] = (
        ("soft tissue mass", 0.28),
        ("effusion", 0.28),
        ("cardiomegaly", 0.28),
    )

    def __post_init__(self) -> None:
        if isinstance(self.prevalence, Mapping):  # accept {"effusion": 0.3, ...} too; store hashable
            object.__setattr__(self, "prevalence", tuple(self.prevalence.items()))
        for name, p in self.prevalence:
            if name not in FINDINGS:
                raise ValueError(f"site {self.name!r}: unknown finding {name!r}; known: {FINDINGS}")
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"site {self.name!r}: prevalence of {name!r} must be in [0, 1]")

    def prevalence_of(self, finding: str) -> float:
        """Probability that an image of this site shows ``finding``."""
        check_findings([finding])
        return dict(self.prevalence).get(finding, 0.0)


SITES: dict[str, Site] = {
    # Generator-source site in the demo: darker, noisier, looser positioning. Noisy enough
    # to be told apart, not so noisy that its findings stop transferring: a probe trained
    # on 271 real site-A images reaches real-test (site-B) AUROC 0.90 for soft tissue mass
    # (at noise 0.030 it was 0.47), so a faithful site-A generator can be useful at site B.
    "site-a": Site(name="site-a", noise=0.018, texture=0.025),
    # Disjoint reference site: brighter (higher exposure, gamma < 1), much less
    # noise, tighter positioning with the patient lower and smaller on the
    # film, slightly larger patients, a different case mix.
    "site-b": Site(
        name="site-b",
        exposure=0.14,
        contrast=0.80,
        gamma=0.80,
        noise=0.012,
        texture=0.015,
        offset=(0.0, 0.06),
        shift_sd=0.02,
        rotation_sd_deg=1.5,
        scale=0.93,
        scale_sd=0.02,
        body_size=1.05,
        body_size_sd=0.05,
        prevalence=(("soft tissue mass", 0.25), ("effusion", 0.30), ("cardiomegaly", 0.25)),
    ),
}


@dataclass(frozen=True)
class PhantomSpec:
    """Path-independent description of one image, enough to re-render it.

    Why: cohorts are passed around and compared as specs (patient ids for
    leakage checks, findings as labels) without touching pixels or files.
    """

    image_seed: int
    patient_id: str
    patient_seed: int
    findings: frozenset[str] = field(default_factory=frozenset)


def check_findings(findings: Iterable[str]) -> frozenset[str]:
    """``findings`` as a frozenset, refusing names not in FINDINGS."""
    if isinstance(findings, str):  # a bare string would iterate per character
        findings = [findings]
    out = frozenset(findings)
    unknown = sorted(out.difference(FINDINGS))
    if unknown:
        raise ValueError(f"unknown finding(s) {unknown}; known findings: {list(FINDINGS)}")
    return out


def resolve_site(site: str | Site) -> Site:
    """A Site, or the one of SITES named ``site``."""
    if isinstance(site, Site):
        return site
    try:
        return SITES[site]
    except (KeyError, TypeError):
        raise ValueError(f"unknown site {site!r}; known sites: {sorted(SITES)}") from None


def check_seed(name: str, seed: int) -> int:
    """``seed`` as a plain int, refusing bools, non-integers and negatives."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{name} must be a non-negative int, got {seed!r}")
    return int(seed)


def sample_cohort(
    site: str | Site,
    n_patients: int,
    images_per_patient: tuple[int, int] | int,
    seed: int,
    id_prefix: str,
) -> list[PhantomSpec]:
    """Draw a cohort of patients with one or more films each, from a seed.

    Why: patient-level structure (several films per patient) is what leakage
    and split checks need, and the site's prevalence sets the label mix. Each
    finding is drawn independently per image. ``images_per_patient`` is a
    count or an inclusive ``(low, high)`` range.
    """
    st = resolve_site(site)
    seed = check_seed("seed", seed)
    if n_patients < 0:
        raise ValueError(f"n_patients must be >= 0, got {n_patients}")
    counts = [images_per_patient] if isinstance(images_per_patient, (int, np.integer)) else list(images_per_patient)
    if len(counts) not in (1, 2):
        raise ValueError(f"images_per_patient must be a count or a (low, high) pair, got {images_per_patient!r}")
    lo, hi = int(counts[0]), int(counts[-1])
    if lo < 1 or hi < lo:
        raise ValueError(f"images_per_patient must be >= 1 (low <= high), got {images_per_patient!r}")
    prev = np.array([st.prevalence_of(f) for f in FINDINGS])
    rng = np.random.default_rng([seed, COHORT_STREAM])
    specs: list[PhantomSpec] = []
    for k in range(n_patients):
        patient_seed = int(rng.integers(2**63))
        n_img = int(rng.integers(lo, hi + 1))
        for _ in range(n_img):
            image_seed = int(rng.integers(2**63))
            has = rng.random(len(FINDINGS)) < prev
            specs.append(
                PhantomSpec(
                    image_seed=image_seed,
                    patient_id=f"{id_prefix}-{k:04d}",
                    patient_seed=patient_seed,
                    findings=frozenset(f for f, h in zip(FINDINGS, has) if h),
                )
            )
    return specs
