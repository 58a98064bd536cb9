"""Unit tests for synthgate.demo.phantoms and .sites: determinism, anatomy, findings, sites, cohorts."""

from __future__ import annotations

import contextlib
import dataclasses
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthgate.demo import phantoms as P
from synthgate.demo.phantoms import render, render_spec
from synthgate.demo.sites import FINDING_STREAM, FINDINGS, PATIENT_STREAM, SITES, PhantomSpec, Site, sample_cohort

MASS, EFFUSION, CARDIOMEGALY = FINDINGS
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
FINDING_SETS = st.frozensets(st.sampled_from(FINDINGS))
SITE_NAMES = st.sampled_from(sorted(SITES))
FAST = settings(max_examples=15, deadline=None)


def _ctr(img: np.ndarray) -> float:
    """Simple cardiothoracic ratio from the column profile of the heart band.

    The two lung valleys of the profile bound the bright central region
    (mediastinum + heart); the thorax spans from the outer edge of one valley
    to the other. Band averaging makes it read low (~0.3 for a normal heart),
    but it moves with the heart width, which is what the tests compare.
    """
    n = img.shape[0]
    prof = img[int(0.45 * n) : int(0.62 * n)].astype(np.float64).mean(axis=0)
    c = n // 2
    lo_l, lo_r = int(np.argmin(prof[:c])), c + int(np.argmin(prof[c:]))
    centre = lo_l + int(np.argmax(prof[lo_l : lo_r + 1]))
    bright = prof >= 0.5 * (max(prof[lo_l], prof[lo_r]) + prof[centre])
    a = b = centre
    while a > lo_l and bright[a - 1]:
        a -= 1
    while b < lo_r and bright[b + 1]:
        b += 1
    left, right = lo_l, lo_r
    while left > 0 and not bright[left - 1]:
        left -= 1
    while right < n - 1 and not bright[right + 1]:
        right += 1
    return (b - a + 1) / (right - left + 1)


def _diff(seed: int, finding: str, site: str = "site-a", size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    base = render(seed, size=size, site=site).astype(np.int16)
    with_it = render(seed, {finding}, size=size, site=site).astype(np.int16)
    return base, with_it - base


@contextlib.contextmanager
def developed():
    """Every finding fully developed (severity 1), for the tests of a finding's shape and place."""
    saved = dict(P.SEVERITY)
    P.SEVERITY.update({name: (1.0, 1.0) for name in saved})
    try:
        yield
    finally:
        P.SEVERITY.update(saved)


# --- determinism and shape ---------------------------------------------------


@FAST
@given(seed=SEEDS, findings=FINDING_SETS, site=SITE_NAMES)
def test_same_arguments_give_identical_bytes(seed, findings, site):
    a = render(seed, findings, site=site)
    b = render(seed, set(findings), site=site)
    assert a.tobytes() == b.tobytes()


@FAST
@given(seed=SEEDS, findings=FINDING_SETS)
def test_different_seeds_give_different_images(seed, findings):
    assert not np.array_equal(render(seed, findings), render(seed + 1, findings))


@pytest.mark.parametrize("size", [64, 224, 512])
def test_dtype_and_shape(size):
    img = render(3, FINDINGS, size=size)
    assert img.dtype == np.uint8
    assert img.shape == (size, size)


def test_default_size_is_64():
    assert render(0).shape == (64, 64)


def test_anatomy_is_resolution_independent():
    """Drawn in continuous coordinates: a 224 px film downsampled matches the 64 px one."""
    small = render(5, {MASS}, size=64, site=SITES["site-b"]).astype(np.float64)
    big = render(5, {MASS}, size=224, site=SITES["site-b"]).astype(np.float64)
    # 224 -> 64 by area-averaging onto the 64 px grid (224 = 3.5 * 64)
    idx = (np.arange(224) * 64) // 224
    down = np.zeros((64, 64))
    np.add.at(down, (idx[:, None], idx[None, :]), big)
    down /= np.bincount(idx)[:, None] * np.bincount(idx)[None, :]
    assert np.corrcoef(small.ravel(), down.ravel())[0, 1] > 0.95


def test_512_renders_fast():
    render(1, FINDINGS, size=512)  # warm-up
    best = min(_timed(lambda: render(2, FINDINGS, size=512)) for _ in range(3))
    assert best < 0.1


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --- findings change the image only where they should ------------------------


@FAST
@given(seed=SEEDS, finding=st.sampled_from(FINDINGS), site=SITE_NAMES)
def test_a_finding_only_adds_density(seed, finding, site):
    """Same seed with and without a finding: same base image, the finding only brightens."""
    _, d = _diff(seed, finding, site)
    assert d.min() >= -1  # rounding at most
    with developed():
        _, d = _diff(seed, finding, site)
    assert (d > 12).sum() > 20  # and, fully developed, it is there


def test_findings_range_from_fully_developed_to_faint():
    """Each patient's finding has its own severity, from barely there (a model cannot reach AUROC 1 on them, as
    on real films) to fully developed; fully developed, every one is clear."""
    for finding in FINDINGS:
        change = np.array([np.clip(_diff(seed, finding, "site-b")[1], 0, None).sum() for seed in range(60)])
        with developed():
            full = np.array([np.clip(_diff(seed, finding, "site-b")[1], 0, None).sum() for seed in range(60)])
        assert np.all(change <= full + 64) and np.percentile(full, 5) > 0.4 * np.median(full), finding
        assert np.percentile(change, 10) < 0.2 * np.median(full), finding  # faint ones exist
        assert np.median(change) > 0.2 * np.median(full), finding  # and a range up to fully developed


@FAST
@given(seed=SEEDS, site=SITE_NAMES)
def test_mass_is_a_compact_disc_in_a_lung_field(seed, site):
    with developed():
        base, d = _diff(seed, MASS, site)
    changed = d > 12
    ys, xs = np.nonzero(changed)
    # at least a disc of radius ~4.5 % of the width shows clearly; and it is one compact blob
    assert changed.sum() >= np.pi * (0.045 * 64) ** 2
    assert np.ptp(xs) < 0.3 * 64 and np.ptp(ys) < 0.3 * 64
    assert d[changed].mean() > 25  # far above the pixel noise (sd ~ 8 grey levels at site-a)
    # it sits on a lung field: darker than the typical body pixel before the mass was added
    body = base > np.percentile(base, 15)
    assert base[changed].mean() < 0.9 * np.median(base[body])
    # and it raises the mean intensity there
    assert (base + d)[changed].mean() > base[changed].mean() + 25


@FAST
@given(seed=SEEDS, site=SITE_NAMES)
def test_effusion_brightens_a_lung_base(seed, site):
    with developed():
        base, d = _diff(seed, EFFUSION, site)
    changed = d > 12
    rows = np.nonzero(changed)[0] / 64.0
    assert changed.sum() > 40
    assert 0.45 < rows.mean() < 0.75  # the lower lung zones, not the apices
    assert d[changed].mean() > 25
    # the upper quarter of the image (apices) is untouched, even by a large effusion
    assert np.abs(d[:16]).max() <= 1


@FAST
@given(seed=SEEDS, site=SITE_NAMES)
def test_cardiomegaly_widens_the_bright_central_region(seed, site):
    normal = _ctr(render(seed, site=site))
    with developed():
        enlarged = _ctr(render(seed, {CARDIOMEGALY}, site=site))
    assert enlarged > normal + 0.03


@pytest.mark.parametrize("site", sorted(SITES))
def test_cardiothoracic_ratio_separates_populations(site):
    seeds = range(40)
    normal = np.array([_ctr(render(s, site=site)) for s in seeds])
    with developed():
        enlarged = np.array([_ctr(render(s, {CARDIOMEGALY}, site=site)) for s in seeds])
    assert enlarged.mean() > normal.mean() + 0.08
    assert np.median(enlarged) > np.percentile(normal, 90)


def test_true_cardiothoracic_ratio_is_normal_or_clearly_enlarged():
    """The drawn geometry itself: ~0.42 normal, > 0.55 with a fully developed cardiomegaly."""
    with developed():
        _ctr_ranges()


def _ctr_ranges():
    for seed in range(50):
        pat = P._draw_patient(np.random.default_rng([seed, PATIENT_STREAM]), SITES["site-a"])
        fnd = P._draw_findings(np.random.default_rng([seed, FINDING_STREAM]))
        acq = P._draw_acquisition(np.random.default_rng(seed), SITES["site-a"], 8)
        for wanted, lo, hi in ((frozenset(), 0.36, 0.48), (frozenset({CARDIOMEGALY}), 0.55, 0.70)):
            assert lo <= P._scene(pat, acq, fnd, wanted)["ctr"] <= hi


# --- realism and sites ---------------------------------------------------------


@FAST
@given(seed=SEEDS, findings=FINDING_SETS, site=SITE_NAMES, size=st.sampled_from([64, 224]))
def test_realistic_dynamic_range(seed, findings, site, size):
    img = render(seed, findings, size=size, site=site)
    assert img.std() > 25
    assert np.percentile(img, 2) < 70 and np.percentile(img, 98) > 140
    # only the direct-beam background may clip (to black), and never most of it
    assert (img == 255).mean() < 0.01 and (img == 0).mean() < 0.08


def test_anatomy_layout():
    """Dark background at the upper corners, dark lungs, bright mediastinum and abdomen."""
    img = np.mean([render(s, site="site-b", size=64).astype(float) for s in range(10)], axis=0)
    corners = np.r_[img[:6, :6].ravel(), img[:6, -6:].ravel()].mean()
    right_lung, left_lung = img[20:34, 12:22].mean(), img[20:34, 43:52].mean()
    mediastinum = img[14:30, 29:35].mean()
    abdomen = img[56:, 20:44].mean()
    assert corners < right_lung - 20 and corners < left_lung - 20
    assert mediastinum > right_lung + 30 and mediastinum > left_lung + 30
    assert abdomen > right_lung + 30
    # the heart bulges to image-right (patient's left): more brightness right of centre
    heart_band = img[34:42]
    assert heart_band[:, 33:46].mean() > heart_band[:, 18:31].mean() + 10


def _noise_sd(img: np.ndarray) -> float:
    """Robust pixel-noise estimate from the second difference along rows."""
    x = img.astype(float)
    lap = x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]
    return 1.4826 * np.median(np.abs(lap - np.median(lap))) / np.sqrt(6)


def test_sites_differ_in_statistics():
    a = [render(s, site="site-a") for s in range(12)]
    b = [render(s, site="site-b") for s in range(12)]
    assert np.mean([x.mean() for x in b]) > np.mean([x.mean() for x in a]) + 10  # site-b is brighter
    assert np.mean([_noise_sd(x) for x in a]) > 1.3 * np.mean([_noise_sd(x) for x in b])  # and cleaner (0.018 vs 0.012)


def test_sites_are_frozen_hashable_and_selectable_by_name():
    assert {"site-a", "site-b"} <= set(SITES)
    site = SITES["site-b"]
    assert isinstance(site, Site) and site.name == "site-b"
    with pytest.raises(dataclasses.FrozenInstanceError):
        site.noise = 0.0  # type: ignore[misc]
    assert hash(site) == hash(dataclasses.replace(site))
    assert np.array_equal(render(4, site="site-b"), render(4, site=site))
    assert not np.array_equal(render(4, site="site-a"), render(4, site="site-b"))


def test_custom_site_accepts_a_prevalence_mapping():
    site = Site(name="x", prevalence={EFFUSION: 0.5})
    assert site.prevalence_of(EFFUSION) == 0.5 and site.prevalence_of(MASS) == 0.0
    hash(site)
    with pytest.raises(ValueError, match="nodule"):
        Site(name="bad", prevalence={"nodule": 0.1})


# --- patients ----------------------------------------------------------------


def test_patient_anatomy_persists_across_films():
    """Repeat films of one patient are closer to each other than to other patients' films."""
    still = dataclasses.replace(SITES["site-b"], shift_sd=0.0, rotation_sd_deg=0.0, scale_sd=0.0)

    def films(patient):
        out = [render(100 + k, size=64, site=still, patient_seed=patient).astype(float) for k in range(3)]
        return [(x - x.mean()) / x.std() for x in out]  # exposure differs between films

    same, other = [], []
    for p1, p2 in [(1, 2), (3, 4), (5, 6), (7, 8)]:
        f1, f2 = films(p1), films(p2)
        same += [np.abs(f[0] - f[k]).mean() for f in (f1, f2) for k in (1, 2)]
        other += [np.abs(f1[k] - f2[k]).mean() for k in range(3)]
    assert np.mean(other) > 1.8 * np.mean(same)


def test_repeat_films_vary_by_positioning_and_noise():
    a = render(1, patient_seed=9)
    b = render(2, patient_seed=9)
    assert not np.array_equal(a, b)
    assert np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1] > 0.8


# --- errors ------------------------------------------------------------------


def test_unknown_finding_names_it_and_the_known_ones():
    with pytest.raises(ValueError) as err:
        render(0, {"pneumothorax"})
    assert "pneumothorax" in str(err.value)
    for name in FINDINGS:
        assert name in str(err.value)


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="site-z"):
        render(0, site="site-z")
    with pytest.raises(ValueError):
        render(-1)
    with pytest.raises(ValueError):
        render(0, size=4)


# --- cohorts -----------------------------------------------------------------


def test_sample_cohort_structure_and_determinism():
    specs = sample_cohort("site-a", 30, (1, 3), seed=7, id_prefix="A")
    assert specs == sample_cohort("site-a", 30, (1, 3), seed=7, id_prefix="A")
    assert specs != sample_cohort("site-a", 30, (1, 3), seed=8, id_prefix="A")
    assert all(isinstance(s, PhantomSpec) for s in specs)
    ids = sorted({s.patient_id for s in specs})
    assert ids == [f"A-{k:04d}" for k in range(30)]
    for pid in ids:
        mine = [s for s in specs if s.patient_id == pid]
        assert 1 <= len(mine) <= 3
        assert len({s.patient_seed for s in mine}) == 1
    assert len({s.patient_seed for s in specs}) == 30
    assert len({s.image_seed for s in specs}) == len(specs)
    assert all(s.findings <= set(FINDINGS) for s in specs)


def test_sample_cohort_fixed_count_and_prevalence():
    specs = sample_cohort("site-b", 200, 2, seed=1, id_prefix="B")
    assert len(specs) == 400
    for name in FINDINGS:
        rate = np.mean([name in s.findings for s in specs])
        assert abs(rate - SITES["site-b"].prevalence_of(name)) < 0.08
    assert any(not s.findings for s in specs) and any(len(s.findings) >= 2 for s in specs)


def test_render_spec_matches_render():
    spec = sample_cohort("site-b", 1, 1, seed=3, id_prefix="C")[0]
    expected = render(spec.image_seed, spec.findings, size=96, site="site-b", patient_seed=spec.patient_seed)
    assert np.array_equal(render_spec(spec, "site-b", 96), expected)
    assert render_spec(spec).shape == (64, 64)
