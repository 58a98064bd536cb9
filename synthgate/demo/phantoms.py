"""Procedural chest-X-ray-like phantoms: drawing the film of one image spec.

Why: the demo and the test-suite need chest films whose ground truth is known
exactly, that a small CNN can learn at 64 px, and that look like the site they
come from (see :mod:`synthgate.demo.sites` for the sites, findings and cohorts).
Real data cannot be shipped, so these are drawn from a seed instead.  This
module owns the anatomy, the findings' appearance and the acquisition of one film.

Everything is drawn in continuous normalised coordinates (``u`` to image-right,
``v`` downwards, both in [-1, 1]) so the same seed gives the same anatomy at
64, 224 or 512 px, and pixel noise is drawn on a fixed detector grid (``NOISE_GRID``),
so a 512 px film area-averaged to 64 px looks like one drawn at 64 px (what a 64 px
evaluating model sees of a 512 px release). The film is PA: the patient's left is image-right, so the
heart bulges to image-right.

Random draws come from independent streams so that a finding changes only the
finding: the patient streams (persistent anatomy, and where / how large each
finding would be, from ``patient_seed``) and the acquisition stream
(positioning, exposure, texture, pixel noise, from ``seed``) are drawn in a
fixed order whatever findings are asked for. Rendering the same seed with and
without a finding therefore gives the same base image, and a patient's repeat
films show the same mass, effusion or heart.
"""

from __future__ import annotations

import math

import numpy as np

from synthgate.demo.sites import (
    FINDING_STREAM,
    PATIENT_STREAM,
    PhantomSpec,
    Site,
    check_findings,
    check_seed,
    resolve_site,
)

__all__ = ["render", "render_spec"]


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


# ----------------------------------------------------------------------------
# random parameter draws (fixed order, independent of the requested findings)


def _draw_patient(rng: np.random.Generator, site: Site) -> dict:
    """Persistent anatomy of one patient (all Python floats)."""
    z = [float(t) for t in rng.standard_normal(12)]
    body = min(max(site.body_size + site.body_size_sd * z[0], 0.82), 1.18)
    return {
        "body": body,
        "lung_u": 0.42 + 0.015 * z[1] + 0.10 * (body - 1.0),  # lung centre from the midline
        "lung_a": 0.33 + 0.018 * z[2] + 0.10 * (body - 1.0),  # lung half-width
        "lung_b": 0.95 + 0.045 * z[3],  # lung half-height (ellipse centred low, cut by the dome)
        "lung_v": 0.25 + 0.03 * z[4],
        "dome_r": 0.29 + 0.035 * z[5],  # right hemidiaphragm (image-left) sits higher
        "dome_l": 0.35 + 0.035 * z[6],
        "ctr": min(max(0.42 + 0.02 * z[7], 0.37), 0.47),  # normal cardiothoracic ratio
        "heart_tilt": 0.30 + 0.05 * z[8],
        "medi_w": 0.11 + 0.012 * z[9],
        "rib_phase": 0.5 + 0.15 * z[10],
        "rib_spacing": 0.135 + 0.006 * z[11],
        "markings": rng.standard_normal((26, 26)).astype(np.float32),
    }


# Pixel noise is drawn on a detector grid of at most this many cells across the film; a
# larger film repeats each cell's value over the pixels it covers. Noise is then the same
# whatever the size a film is drawn at once it is brought back to this size by area averaging
# (what the gate does before a 64 px model sees a 512 px film), and films of at most
# NOISE_GRID px are exactly as before.
NOISE_GRID = 64


def _draw_acquisition(rng: np.random.Generator, site: Site, size: int) -> dict:
    """Positioning, exposure and noise of one image (noise on the detector grid, see NOISE_GRID)."""
    z = [float(t) for t in rng.standard_normal(6)]
    cells = min(size, NOISE_GRID)
    return {
        "du": site.offset[0] + site.shift_sd * z[0],
        "dv": site.offset[1] + site.shift_sd * z[1],
        "rot": float(np.deg2rad(site.rotation_sd_deg * z[2])),
        "scale": site.scale * (1.0 + site.scale_sd * z[3]),
        "inspiration": 1.0 + 0.02 * z[4],
        "exposure": 0.015 * z[5],
        "texture": rng.standard_normal((6, 6)).astype(np.float32),
        "noise": _detector_noise(rng.standard_normal((cells, cells), dtype=np.float32), size),
    }


def _detector_noise(cells: np.ndarray, size: int) -> np.ndarray:
    """Noise drawn per detector cell, spread over the ``size`` x ``size`` pixels each cell covers."""
    if len(cells) == size:
        return cells
    index = np.arange(size) * len(cells) // size
    return np.ascontiguousarray(cells[index][:, index])


def _draw_findings(rng: np.random.Generator) -> dict:
    """Appearance each finding would have if present.

    Always drawn, so the base image never moves; drawn per patient, so a
    patient's repeat films show the same mass / effusion / heart.
    """
    return {
        "mass_side": int(rng.integers(2)),
        "mass_lat": float(rng.uniform(0.0, 1.0)),  # mapped per side in _scene (the heart is on the left)
        "mass_v": float(rng.uniform(0.0, 1.0)),
        "mass_r": float(rng.uniform(0.14, 0.21)),  # image half-width = 1: >= 6 % of the width
        "mass_c": float(rng.uniform(0.24, 0.36)),
        "eff_sides": int(rng.choice(3, p=[0.35, 0.35, 0.30])),  # right, left, both
        "eff_height": [float(t) for t in rng.uniform(0.12, 0.30, size=2)],  # above the dome, medially
        "eff_meniscus": [float(t) for t in rng.uniform(0.10, 0.20, size=2)],  # rise along the chest wall
        "cm_ctr": float(rng.uniform(0.55, 0.63)),
        # drawn last, so that every draw above (and each image drawn before severities existed) stays as it was
        "severity": [float(t) for t in rng.uniform(0.0, 1.0, size=len(SEVERITY))],
    }


# How developed each finding is, per patient: severity = floor + (1 - floor) * u ** power for u uniform
# in [0, 1], 1 the fully developed finding, 0 none at all. Real findings range from obvious to barely
# visible (small faint masses, a thin layer of fluid, a heart at the upper edge of normal): a model
# trained on these images reaches real-test AUROC of about 0.85-0.97, not a trivial 1.
SEVERITY = {"soft tissue mass": (0.2, 1.0), "effusion": (0.0, 1.2), "cardiomegaly": (0.0, 1.2)}


def _severity(fnd: dict, finding: str) -> float:
    floor, power = SEVERITY[finding]
    return floor + (1.0 - floor) * fnd["severity"][list(SEVERITY).index(finding)] ** power


# ----------------------------------------------------------------------------
# rendering

# Pixels per block: NumPy temporaries of this size (64 KiB of float32) are
# recycled by malloc; full-image temporaries at 512 px are returned to the OS
# and faulted back in on every operation, which costs ~5x the arithmetic.
_BLOCK_PIXELS = 16384


def _scene(pat: dict, acq: dict, fnd: dict, wanted: frozenset[str]) -> dict:
    """Turn the random draws into the scalar geometry of one film (patient frame)."""
    insp = acq["inspiration"]
    la = pat["lung_a"]
    thorax_w = 2.0 * (pat["lung_u"] + la)
    enlarged = max(fnd["cm_ctr"], pat["ctr"] + 0.10)  # a fully developed cardiomegaly
    ctr = pat["ctr"] + (enlarged - pat["ctr"]) * _severity(fnd, "cardiomegaly") if "cardiomegaly" in wanted else pat["ctr"]
    grow = ctr / pat["ctr"]
    # Heart: tilted ellipse (long axis down to image-right) with prescribed
    # horizontal half-extent hx (sets the CTR) and vertical half-extent hy.
    hx0 = pat["ctr"] * thorax_w / 2.0
    hx, hy = hx0 * grow, 0.80 * hx0 * grow**0.75  # an enlarged heart is rounder, not longer
    ct, sn = math.cos(pat["heart_tilt"]), math.sin(pat["heart_tilt"])
    det = ct * ct - sn * sn
    ha = math.sqrt((hx * hx * ct * ct - hy * hy * sn * sn) / det)
    hb = math.sqrt((hy * hy * ct * ct - hx * hx * sn * sn) / det)
    h_right = -0.16 - 0.75 * (hx - hx0)  # right border (image-left); 3/8 of the growth goes there
    mass, fluid = _severity(fnd, "soft tissue mass"), _severity(fnd, "effusion")
    return {
        "body": pat["body"],
        "lung_u": pat["lung_u"],
        "la": la,
        "lb": pat["lung_b"] * insp,
        "lv": pat["lung_v"] + 0.3 * (insp - 1.0),
        "domes": (pat["dome_r"] * insp, pat["dome_l"] * insp),
        "thorax_w": thorax_w,
        "ctr": ctr,
        "dome_l": pat["dome_l"],
        "medi_w": pat["medi_w"],
        "heart": (h_right + hx, pat["dome_l"] * insp + 0.06 - hy, ha, hb, ct, sn, 0.8 * hx),
        "rib_phase": pat["rib_phase"],
        "rib_spacing": pat["rib_spacing"],
        "mass": _mass_centre(pat, fnd) + (fnd["mass_r"] * (0.6 + 0.4 * mass), fnd["mass_c"] * mass)
        if "soft tissue mass" in wanted else None,
        "effusion": tuple(
            (fnd["eff_height"][k] * fluid, fnd["eff_meniscus"][k] * fluid, fluid) if fnd["eff_sides"] in (k, 2) else None
            for k in (0, 1)
        )
        if "effusion" in wanted
        else (None, None),
    }


def _mass_centre(pat: dict, fnd: dict) -> tuple[float, float]:
    """Mass centre inside a lung field; in the left lung, above and lateral to the heart."""
    if fnd["mass_side"] == 0:  # patient's right lung, image-left
        lat, v = -0.10 + 0.24 * fnd["mass_lat"], -0.45 + 0.45 * fnd["mass_v"]
        return -(pat["lung_u"] + lat), v
    lat, v = -0.02 + 0.16 * fnd["mass_lat"], -0.45 + 0.30 * fnd["mass_v"]
    return pat["lung_u"] + lat, v


def _attenuation(sc: dict, u: np.ndarray, v: np.ndarray, markings: np.ndarray, px: float) -> np.ndarray:
    """Projected attenuation (roughly 0 = air .. 1 = dense) at patient-frame points."""
    au = np.abs(u)

    # body outline: neck, sloping shoulders, chest wall; cylinder-like thickness.
    bw = sc["body"]
    half_w = (0.22 + 0.70 * _ramp((v + 0.62) / 0.24)) * bw - 0.05 * np.clip(v - 0.3, 0.0, None)
    body = _ramp((half_w - au) / max(0.015, px))
    thick = np.sqrt(np.clip(1.0 - (u / (half_w + 0.06)) ** 2, 0.0, 1.0))
    atten = body * (0.36 + 0.22 * thick)

    # mediastinum, heart, aortic knob: soft tissue that hides the lungs behind it.
    medi_w = sc["medi_w"] * (1.0 + 0.35 * _ramp((v + 0.2) / 0.25))  # widens towards the hila
    medi = _ramp((medi_w - np.abs(u - 0.01)) / 0.04) * _ramp((v + 0.95) / 0.08)
    hcu, hcv, ha, hb, ct, sn, hx = sc["heart"]
    hu, hv = u - hcu, v - hcv
    hr, hs = ct * hu + sn * hv, ct * hv - sn * hu
    heart = _ramp((1.0 - (hr / ha) ** 2 - (hs / hb) ** 2) / max(0.12, 3 * px))
    # the lower half sits flat on the diaphragm: no lung shows between heart and dome
    heart = np.maximum(heart, _ramp((v - hcv) / 0.06) * _ramp((hx - np.abs(u - hcu)) / 0.05))
    knob = _ramp((1.0 - ((u - 0.11) / 0.08) ** 2 - ((v + 0.30) / 0.075) ** 2) / 0.25)
    open_lung = 1.0 - np.maximum(np.maximum(medi, heart), knob)

    # lungs: ellipses centred low (narrow apex, wide base) cut by the domes; an
    # effusion displaces the air below a meniscus that rises along the chest wall.
    la, lb, lv = sc["la"], sc["lb"], sc["lv"]
    air = np.zeros_like(u)
    for k, sign in enumerate((-1.0, 1.0)):
        lat = sign * u - sc["lung_u"]  # + towards the chest wall
        f = (lat / la) ** 2 + ((v - lv) / lb) ** 2
        dome_top = sc["domes"][k]
        lung = _ramp((1.0 - f) / max(0.07, 2.5 * px)) * _ramp((dome_top + 1.3 * (lat + 0.05) ** 2 - v) / max(0.02, px))
        lung_air = lung * (0.6 + 0.4 * np.sqrt(np.clip(1.0 - f, 0.0, 1.0)))
        eff = sc["effusion"][k]
        if eff is not None:
            t_lat = np.clip((lat + la) / (2.0 * la), 0.0, 1.0)  # 0 medial .. 1 chest wall
            top = dome_top - eff[0] - eff[1] * t_lat * t_lat
            fluid = _ramp((v - top) / max(0.05, 2 * px)) * (0.85 + 0.15 * np.clip((v - top) / 0.15, 0.0, 1.0)) * eff[2]
            lung_air = lung_air * (1.0 - fluid)
        air += lung_air
    atten -= (0.38 * open_lung * (1.0 - 0.12 * markings)) * air

    # bones: posterior ribs (periodic bands, spacing growing downwards), clavicles, spine.
    rib_curve = 1.1 * (au - 0.22) ** 2
    t = np.sqrt(np.clip(v - rib_curve + 0.78, 0.0, None) / sc["rib_spacing"]) * 2.7 + sc["rib_phase"]
    ribs = 0.5 + 0.5 * np.cos((2.0 * np.pi) * t)
    ribs = ribs * ribs
    ribs = ribs * ribs  # narrow bands; float ** 4 would be ~100x slower than squaring
    thorax = _ramp((sc["thorax_w"] / 2.0 + 0.04 - au) / 0.05) * _ramp((sc["dome_l"] + 0.12 - v) / 0.08)
    ribs = ribs * thorax * (0.3 + 0.7 * np.clip(1.4 * air * open_lung, 0.0, 1.0))  # seen against air
    clav = _bump((v + 0.60 + 0.14 * (au - 0.1)) / 0.045) * _ramp((0.62 - au) / 0.05) * _ramp((au - 0.06) / 0.03)
    spine = _bump(u / 0.09) * (0.6 + 0.4 * np.cos((np.pi / 0.11) * v) ** 2)
    hila = _bump(np.sqrt(((au - 0.20) / 0.10) ** 2 + ((v + 0.02) / 0.17) ** 2))
    trachea = _ramp((0.035 - np.abs(u - 0.005)) / 0.02) * _ramp((-0.32 - v) / 0.06)
    extra = 0.03 * (1.0 - open_lung) + 0.04 * hila + 0.10 * ribs + 0.14 * clav
    extra += 0.06 * spine - 0.08 * trachea

    # soft tissue mass: a soft-edged, slightly domed disc in one lung field.
    if sc["mass"] is not None:
        mu, mv, r, contrast = sc["mass"]
        d = np.sqrt((u - mu) ** 2 + (v - mv) ** 2)
        disc = _smoothstep((r - d) / (0.35 * r)) * (0.8 + 0.2 * np.sqrt(np.clip(1.0 - (d / r) ** 2, 0.0, 1.0)))
        extra += contrast * disc
    atten += body * extra
    return np.clip(atten, 0.0, None)


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
    ``seed``) fixes the anatomy and the look of each finding, so several seeds
    with one patient_seed are repeat films of one patient. The same arguments always
    give byte-identical output, and adding a finding changes only the finding.
    """
    seed = check_seed("seed", seed)
    wanted = check_findings(findings)
    st = resolve_site(site)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    size = int(size)
    pseed = seed if patient_seed is None else check_seed("patient_seed", patient_seed)

    pat = _draw_patient(np.random.default_rng([pseed, PATIENT_STREAM]), st)
    fnd = _draw_findings(np.random.default_rng([pseed, FINDING_STREAM]))
    acq = _draw_acquisition(np.random.default_rng(seed), st, size)
    sc = _scene(pat, acq, fnd, wanted)

    # Image-plane axis (pixel centres); patient frame = image frame shifted,
    # scaled and rotated by the positioning of this film.
    g = (np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0
    mag = acq["scale"]
    c, s = math.cos(acq["rot"]), math.sin(acq["rot"])
    px = 2.0 / size / mag  # one pixel in patient units: edges stay >= ~1 px soft
    xs = ((g - acq["du"]) / mag)[None, :]
    # Smooth fields as separable products: lung markings move with the patient
    # (rotation ignored: it is a texture), exposure texture stays on the detector.
    n_mark, n_tex = pat["markings"].shape[0], acq["texture"].shape[0]
    mark_x = pat["markings"] @ _interp_matrix((g - acq["du"]) / mag, n_mark).T
    mark_y = _interp_matrix((g - acq["dv"]) / mag, n_mark)
    tex_x = acq["texture"] @ _interp_matrix(g, n_tex).T
    tex_y = _interp_matrix(g, n_tex)

    out = np.empty((size, size), dtype=np.uint8)
    step = max(1, _BLOCK_PIXELS // size)
    gain, gamma, level = st.contrast, st.gamma, st.exposure + acq["exposure"]
    for r0 in range(0, size, step):
        r1 = min(size, r0 + step)
        ys = ((g[r0:r1] - acq["dv"]) / mag)[:, None]
        u = c * xs + s * ys
        v = c * ys - s * xs
        atten = _attenuation(sc, u, v, mark_y[r0:r1] @ mark_x, px)
        img = np.clip(level + gain * atten, 0.0, 1.0)
        if gamma != 1.0:
            img = np.exp(gamma * np.log(np.maximum(img, 1e-6)))  # img ** gamma; float pow is slow
        img *= 1.0 + st.texture * (tex_y[r0:r1] @ tex_x)
        img += st.noise * acq["noise"][r0:r1]
        out[r0:r1] = np.clip(img * 255.0 + 0.5, 0.0, 255.0)
    return out


def render_spec(spec: PhantomSpec, site: str | Site = "site-a", size: int = 64) -> np.ndarray:
    """Render a :class:`PhantomSpec` (convenience for cohort code)."""
    return render(spec.image_seed, spec.findings, size=size, site=site, patient_seed=spec.patient_seed)
