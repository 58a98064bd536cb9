"""Procedural chest-X-ray-like phantoms with controllable multi-label findings.

Why: the demo and the test-suite need chest films whose ground truth is known
exactly, that a small CNN can learn at 64 px, and that come from more than one
"site" so that distribution-shift checks have something to find. Real data
cannot be shipped, so these are drawn from a seed instead.

Everything is drawn in continuous normalised coordinates (``u`` to image-right,
``v`` downwards, both in [-1, 1]) so the same seed gives the same anatomy at
64, 224 or 512 px. The film is PA: the patient's left is image-right, so the
heart bulges to image-right.

Random draws come from independent streams so that a finding changes only the
finding: the patient stream (persistent anatomy, from ``patient_seed``), the
acquisition stream (positioning, exposure, texture, pixel noise) and the
finding stream (where and how large each finding would be) are all drawn in a
fixed order whatever findings are asked for. Rendering the same seed with and
without a finding therefore gives the same base image.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import math

import numpy as np

__all__ = [
    "FINDINGS",
    "Site",
    "SITES",
    "PhantomSpec",
    "render",
    "render_spec",
    "sample_cohort",
]

FINDINGS: tuple[str, ...] = ("soft tissue mass", "effusion", "cardiomegaly")

_PATIENT_STREAM = 0x5EED_0001  # mixed into patient seeds so they never alias image seeds


@dataclass(frozen=True)
class Site:
    """Acquisition and patient-mix settings of one hospital / scanner.

    Why: a quality gate must notice when a release looks like another site
    (exposure, noise, positioning) or has another case mix, so phantoms carry
    the site's fingerprint explicitly.
    """

    name: str
    exposure: float = 0.06  # output level added to every pixel (0..1 scale)
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
        for name, p in self.prevalence:
            if name not in FINDINGS:
                raise ValueError(f"site {self.name!r}: unknown finding {name!r}; known: {FINDINGS}")
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"site {self.name!r}: prevalence of {name!r} must be in [0, 1]")

    def prevalence_of(self, finding: str) -> float:
        """Probability that an image of this site shows ``finding``."""
        _check_findings([finding])
        return dict(self.prevalence).get(finding, 0.0)


SITES: dict[str, Site] = {
    # Generator-source site in the demo: darker, noisier, looser positioning.
    "site-a": Site(name="site-a"),
    # Disjoint reference site: brighter, cleaner, higher-contrast detector,
    # patients placed lower and larger on the film, slightly larger patients.
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


# ----------------------------------------------------------------------------
# small vectorised helpers (float32 in, float32 out: params are Python floats so
# NumPy's promotion rules never widen the image arrays to float64)


def _ramp(x: np.ndarray) -> np.ndarray:
    """Smooth 0 -> 1 transition over x in [-1, 1] (a cheap, exact-zero sigmoid)."""
    t = np.clip(0.5 + 0.5 * x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _bump(x: np.ndarray) -> np.ndarray:
    """Compact smooth bump: 1 at x = 0, 0 for |x| >= 1 (cheaper than exp)."""
    t = np.clip(1.0 - x * x, 0.0, 1.0)
    return t * t


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _interp_matrix(coords: np.ndarray, n: int, lo: float = -1.4, hi: float = 1.4) -> np.ndarray:
    """Weights that sample an n-point grid at 1-D coords (smooth linear interpolation)."""
    pos = np.clip((coords - lo) / (hi - lo) * (n - 1), 0.0, n - 1 - 1e-4)
    i0 = pos.astype(np.int64)
    w1 = _smoothstep(pos - i0).astype(np.float32)
    m = np.zeros((coords.size, n), dtype=np.float32)
    rows = np.arange(coords.size)
    m[rows, i0] = 1.0 - w1
    m[rows, i0 + 1] += w1
    return m


def _smooth_field(grid: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Separable upsampling of a coarse random grid onto axis coordinates.

    Why: a size-independent low-frequency texture (same look at 64 and 512 px)
    for the price of two small matrix products.
    """
    n = grid.shape[0]
    return _interp_matrix(cy, n) @ grid @ _interp_matrix(cx, n).T


def _check_findings(findings: Iterable[str]) -> frozenset[str]:
    if isinstance(findings, str):  # a bare string would iterate per character
        findings = [findings]
    out = frozenset(findings)
    unknown = sorted(out.difference(FINDINGS))
    if unknown:
        raise ValueError(f"unknown finding(s) {unknown}; known findings: {list(FINDINGS)}")
    return out


def _resolve_site(site: str | Site) -> Site:
    if isinstance(site, Site):
        return site
    try:
        return SITES[site]
    except (KeyError, TypeError):
        raise ValueError(f"unknown site {site!r}; known sites: {sorted(SITES)}") from None


def _check_seed(name: str, seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{name} must be a non-negative int, got {seed!r}")
    return int(seed)


# ----------------------------------------------------------------------------
# random parameter draws (fixed order, independent of the requested findings)


def _draw_patient(rng: np.random.Generator, site: Site) -> dict:
    """Persistent anatomy of one patient (all Python floats)."""
    z = [float(t) for t in rng.standard_normal(12)]
    body = min(max(site.body_size + site.body_size_sd * z[0], 0.82), 1.18)
    return {
        "body": body,
        "lung_u": 0.42 + 0.012 * z[1] + 0.10 * (body - 1.0),  # lung centre from the midline
        "lung_a": 0.33 + 0.012 * z[2] + 0.10 * (body - 1.0),  # lung half-width
        "lung_b": 0.95 + 0.03 * z[3],  # lung half-height (ellipse centred low, cut by the dome)
        "lung_v": 0.25 + 0.02 * z[4],
        "dome_r": 0.29 + 0.025 * z[5],  # right hemidiaphragm (image-left) sits higher
        "dome_l": 0.35 + 0.025 * z[6],
        "ctr": min(max(0.42 + 0.02 * z[7], 0.37, 0.0), 0.47),  # normal cardiothoracic ratio
        "heart_tilt": 0.45 + 0.06 * z[8],
        "medi_w": 0.11 + 0.008 * z[9],
        "rib_phase": 0.5 + 0.15 * z[10],
        "rib_spacing": 0.135 + 0.006 * z[11],
        "markings": rng.standard_normal((26, 26)).astype(np.float32),
    }


def _draw_acquisition(rng: np.random.Generator, site: Site, size: int) -> dict:
    """Positioning, exposure and noise of one image."""
    z = [float(t) for t in rng.standard_normal(6)]
    return {
        "du": site.offset[0] + site.shift_sd * z[0],
        "dv": site.offset[1] + site.shift_sd * z[1],
        "rot": float(np.deg2rad(site.rotation_sd_deg * z[2])),
        "scale": site.scale * (1.0 + site.scale_sd * z[3]),
        "inspiration": 1.0 + 0.02 * z[4],
        "exposure": 0.02 * z[5],
        "texture": rng.standard_normal((6, 6)).astype(np.float32),
        "noise": rng.standard_normal((size, size), dtype=np.float32),
    }


def _draw_findings(rng: np.random.Generator) -> dict:
    """Appearance each finding would have if present (always drawn, so the base image never moves)."""
    return {
        "mass_side": int(rng.integers(2)),
        "mass_lat": float(rng.uniform(-0.10, 0.14)),  # + towards the chest wall, from the lung centre
        "mass_v": float(rng.uniform(-0.45, 0.05)),
        "mass_r": float(rng.uniform(0.13, 0.20)),  # normalised: >= 6.5 % of the image width
        "mass_c": float(rng.uniform(0.17, 0.28)),
        "eff_sides": int(rng.choice(3, p=[0.35, 0.35, 0.30])),  # right, left, both
        "eff_height": [float(t) for t in rng.uniform(0.06, 0.22, size=2)],  # above the dome, medially
        "eff_meniscus": [float(t) for t in rng.uniform(0.12, 0.22, size=2)],  # rise along the chest wall
        "cm_factor": float(rng.uniform(1.38, 1.60)),
    }


# ----------------------------------------------------------------------------
# rendering


def render(
    seed: int,
    findings: frozenset[str] | set[str] = frozenset(),
    *,
    size: int = 64,
    site: str | Site = "site-a",
    patient_seed: int | None = None,
) -> np.ndarray:
    """Render one PA chest phantom as a ``size`` x ``size`` uint8 array.

    ``seed`` fixes positioning, exposure and noise; ``patient_seed`` (default:
    derived from ``seed``) fixes the anatomy, so several seeds with one
    patient_seed are repeat films of one patient. The same arguments always
    give byte-identical output, and adding a finding changes only the finding.
    """
    seed = _check_seed("seed", seed)
    wanted = _check_findings(findings)
    st = _resolve_site(site)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    size = int(size)
    pseed = seed if patient_seed is None else _check_seed("patient_seed", patient_seed)

    pat = _draw_patient(np.random.default_rng([pseed, _PATIENT_STREAM]), st)
    acq_rng, find_rng = np.random.default_rng(seed).spawn(2)
    acq = _draw_acquisition(acq_rng, st, size)
    fnd = _draw_findings(find_rng)

    # Image-plane axis (pixel centres), then into the patient frame.
    g = (np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0
    x, y = g[None, :], g[:, None]  # x: image-right, y: down (broadcast, no meshgrid)
    sc = acq["scale"]
    c, s = math.cos(acq["rot"]), math.sin(acq["rot"])
    xs, ys = (x - acq["du"]) / sc, (y - acq["dv"]) / sc
    u = c * xs + s * ys
    v = -s * xs + c * ys
    px = 2.0 / size / sc  # one pixel in patient units: edges stay >= ~1 px soft
    au = np.abs(u)

    # --- body outline: neck, sloping shoulders, chest wall; cylinder-like thickness.
    bw = pat["body"]
    half_w = (0.22 + 0.70 * _ramp((v + 0.66) / 0.16)) * bw - 0.05 * np.clip(v - 0.3, 0.0, None)
    body = _ramp((half_w - au) / max(0.015, px))
    thick = np.sqrt(np.clip(1.0 - (u / (half_w + 0.06)) ** 2, 0.0, 1.0))
    tissue = body * (0.28 + 0.30 * thick)

    # --- lungs: ellipses centred low (narrow apex, wide base) cut by the domes.
    insp = acq["inspiration"]
    la, lb = pat["lung_a"], pat["lung_b"] * insp
    lv = pat["lung_v"] + 0.3 * (insp - 1.0)
    lung_edge = max(0.07, 2.5 * px)
    sides = []
    for sign, dome_top in ((-1.0, pat["dome_r"]), (1.0, pat["dome_l"])):
        lat = sign * u - pat["lung_u"]  # + towards the chest wall
        f = (lat / la) ** 2 + ((v - lv) / lb) ** 2
        inside = _ramp((1.0 - f) / lung_edge)
        dome = dome_top * insp + 1.3 * (lat + 0.05) ** 2
        above = _ramp((dome - v) / max(0.02, px))
        depth = 0.6 + 0.4 * np.sqrt(np.clip(1.0 - f, 0.0, 1.0))
        sides.append({"lat": lat, "lung": inside * above, "depth": depth, "dome_top": dome_top * insp})

    # --- mediastinum, heart, aortic knob, hila, trachea.
    medi = _ramp((pat["medi_w"] - np.abs(u - 0.01)) / 0.04) * _ramp((v + 0.95) / 0.08)
    thorax_w = 2.0 * (pat["lung_u"] + la)
    grow = fnd["cm_factor"] if "cardiomegaly" in wanted else 1.0
    heart_w = pat["ctr"] * grow * thorax_w
    ct, sn = math.cos(pat["heart_tilt"]), math.sin(pat["heart_tilt"])
    ha = heart_w / 2.0 / math.sqrt(ct**2 + (0.72 * sn) ** 2)  # long axis: horizontal extent = heart_w
    hb = 0.72 * ha
    half_h = math.sqrt((ha * sn) ** 2 + (hb * ct) ** 2)
    h_right = -0.16 - 0.25 * (grow - 1.0) * heart_w / grow  # right border; growth goes mostly left
    hcu = h_right + heart_w / 2.0
    hcv = pat["dome_l"] + 0.07 - half_h  # the heart sits on the diaphragm
    hu, hv = u - hcu, v - hcv
    hr, hs = ct * hu + sn * hv, -sn * hu + ct * hv  # long axis tilted down to image-right
    heart = _ramp((1.0 - (hr / ha) ** 2 - (hs / hb) ** 2) / max(0.12, 3 * px))
    knob = _ramp((1.0 - ((u - 0.13) / 0.09) ** 2 - ((v + 0.30) / 0.075) ** 2) / 0.25)
    hila = _bump(np.sqrt(((au - 0.20) / 0.10) ** 2 + ((v + 0.02) / 0.17) ** 2))
    trachea = _ramp((0.035 - np.abs(u - 0.005)) / 0.02) * _ramp((-0.32 - v) / 0.06)
    central = np.maximum(np.maximum(medi, heart), knob)

    # --- air in the lungs where no mediastinum/heart overlies them; fluid displaces it.
    markings = _smooth_field(pat["markings"], (g - acq["du"]) / sc, (g - acq["dv"]) / sc)
    open_lung = 1.0 - central
    extra = np.zeros_like(u)
    eff_sides = (0, 1) if fnd["eff_sides"] == 2 else (fnd["eff_sides"],)
    air = np.zeros_like(u)
    for k, sd in enumerate(sides):
        lung_air = sd["lung"] * sd["depth"]
        if "effusion" in wanted and k in eff_sides:
            t_lat = np.clip((sd["lat"] + la) / (2.0 * la), 0.0, 1.0)  # 0 medial .. 1 chest wall
            top = sd["dome_top"] - fnd["eff_height"][k] - fnd["eff_meniscus"][k] * t_lat * t_lat
            fluid = _ramp((v - top) / max(0.05, 2 * px))
            depth = np.clip((v - top) / 0.3, 0.0, 1.0)
            extra = extra + sd["lung"] * fluid * (0.05 + 0.08 * depth) * open_lung
            lung_air = lung_air * (1.0 - fluid)
        air = air + lung_air
    air = air * open_lung * (1.0 - 0.12 * markings)

    # --- bones: posterior ribs (periodic bands), clavicles, spine.
    rib_curve = 1.1 * (au - 0.22) ** 2
    t = np.sqrt(np.clip(v - rib_curve + 0.78, 0.0, None) / pat["rib_spacing"]) * 2.7 + pat["rib_phase"]
    ribs = 0.5 + 0.5 * np.cos((2.0 * np.pi) * t)
    ribs = ribs * ribs
    ribs = ribs * ribs  # narrow bright bands (float pow would be ~100x slower than squaring)
    lungs = sides[0]["lung"] + sides[1]["lung"]
    thorax = _ramp((thorax_w / 2.0 + 0.04 - au) / 0.05) * _ramp((pat["dome_l"] + 0.12 - v) / 0.08)
    ribs = ribs * thorax * (0.3 + 0.7 * lungs * open_lung)
    clav = _bump((v + 0.60 + 0.14 * (au - 0.1)) / 0.045) * _ramp((0.62 - au) / 0.05)
    clav = clav * _ramp((au - 0.06) / 0.03)
    spine = _bump(u / 0.09) * (0.6 + 0.4 * np.cos((np.pi / 0.11) * v) ** 2)

    # --- soft tissue mass: a soft-edged disc in one lung field.
    if "soft tissue mass" in wanted:
        sign = -1.0 if fnd["mass_side"] == 0 else 1.0
        mu = sign * (pat["lung_u"] + fnd["mass_lat"])
        mv = fnd["mass_v"]
        r = fnd["mass_r"]
        d = np.sqrt((u - mu) ** 2 + (v - mv) ** 2)
        disc = _smoothstep((r - d) / (0.35 * r)) * (0.8 + 0.2 * np.sqrt(np.clip(1.0 - (d / r) ** 2, 0.0, 1.0)))
        extra = extra + fnd["mass_c"] * disc

    atten = (
        tissue
        - 0.38 * air
        + body * (0.05 * central + 0.05 * heart + 0.04 * hila + 0.10 * ribs + 0.14 * clav + 0.06 * spine)
        - 0.08 * trachea * body
        + extra * body
    )

    # --- detector: gain, gamma, smooth exposure texture (image plane), pixel noise.
    tex = _smooth_field(acq["texture"], g, g)
    img = np.clip(st.exposure + acq["exposure"] + st.contrast * atten, 0.0, 1.0)
    if st.gamma != 1.0:
        img = np.exp(st.gamma * np.log(np.maximum(img, 1e-6)))  # img ** gamma, but vectorised
    img = img * (1.0 + st.texture * tex) + st.noise * acq["noise"]
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def render_spec(spec: PhantomSpec, site: str | Site = "site-a", size: int = 64) -> np.ndarray:
    """Render a :class:`PhantomSpec` (convenience for cohort code)."""
    return render(spec.image_seed, spec.findings, size=size, site=site, patient_seed=spec.patient_seed)


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
    st = _resolve_site(site)
    seed = _check_seed("seed", seed)
    if n_patients < 0:
        raise ValueError(f"n_patients must be >= 0, got {n_patients}")
    if isinstance(images_per_patient, (int, np.integer)):
        lo = hi = int(images_per_patient)
    else:
        lo, hi = (int(k) for k in images_per_patient)
    if lo < 1 or hi < lo:
        raise ValueError(f"images_per_patient must be >= 1 (low <= high), got {images_per_patient!r}")
    prev = np.array([st.prevalence_of(f) for f in FINDINGS])
    rng = np.random.default_rng([seed, _PATIENT_STREAM + 1])
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
