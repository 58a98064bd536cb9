"""Feature-space distances (FD, KID, kNN, PRDC, classifier tests) and the distribution checks' near-duplicate search."""

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from synthgate.measures.distances import (
    detectability_auroc,
    frechet_distance,
    frechet_distance_from_stats,
    frechet_distances,
    kid,
    knn,
    nearest_neighbour_similarity,
    pairwise_sq_dists_chunked,
    prdc,
    shift_tolerant_similarity,
    source_identifiability,
)
from synthgate.measures.metrics import Estimate, MeanStd


def _gauss(n, d, seed, shift=0.0):
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def _spd(d, rng):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _psd_sqrt(m):
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


# ----------------------------------------------------------------------------- Fréchet distance


def test_frechet_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _spd(d, rng), _spd(d, rng)  # do not commute
    root1 = _psd_sqrt(s1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.trace(_psd_sqrt(root1 @ s2 @ root1))
    assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # Diagonal case by hand: sum (mu diff)^2 + sum (sqrt(a) - sqrt(b))^2.
    a, b = np.array([1.0, 4.0]), np.array([9.0, 1.0])
    assert frechet_distance_from_stats([0, 0], np.diag(a), [3, 4], np.diag(b)) == pytest.approx(25 + 4 + 1)


def test_frechet_from_samples_approaches_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = np.zeros(3), np.array([1.0, -1.0, 0.5])
    s1, s2 = _spd(3, rng), _spd(3, rng)
    x = rng.multivariate_normal(mu1, s1, size=20000)
    y = rng.multivariate_normal(mu2, s2, size=20000)
    assert frechet_distance(x, y) == pytest.approx(frechet_distance_from_stats(mu1, s1, mu2, s2), abs=0.05)


def test_frechet_identical_sets_is_zero_and_singular_covariance_is_finite():
    x = _gauss(50, 8, 2)
    assert frechet_distance(x, x) == pytest.approx(0, abs=1e-6)
    small, other = _gauss(10, 64, 3), _gauss(12, 64, 4, shift=1.0)  # n < d: singular covariances
    fd = frechet_distance(small, other)
    assert np.isfinite(fd) and fd > 0
    with pytest.raises(ValueError, match="two samples"):
        frechet_distance(x[:1], x)


def test_frechet_matches_scipy_sqrtm_and_handles_singular_covariances():
    import scipy.linalg

    rng = np.random.default_rng(5)
    s1, s2 = _spd(6, rng), _spd(6, rng)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    reference = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2) - 2 * np.trace(np.real(scipy.linalg.sqrtm(s1 @ s2)))
    assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-9)
    singular = np.diag([1.0, 0.0])
    assert frechet_distance_from_stats([0, 0], singular, [0, 0], singular) == pytest.approx(0, abs=1e-9)


def test_frechet_from_fewer_samples_than_dimensions_equals_the_covariance_form():
    """With n < d the trace term comes from the samples' cross products; it must equal the covariance form."""
    import scipy.linalg

    rng = np.random.default_rng(6)
    reference = rng.normal(size=(30, 48)) @ rng.normal(size=(48, 48)) * 0.3
    for other in (rng.normal(size=(20, 48)) + 0.5, rng.normal(size=(45, 48)) * 2, reference[::-1]):
        s1, s2 = np.cov(reference, rowvar=False), np.cov(other, rowvar=False)
        diff = reference.mean(0) - other.mean(0)
        expected = diff @ diff + np.trace(s1 + s2) - 2 * np.trace(np.real(scipy.linalg.sqrtm(s1 @ s2)))
        assert frechet_distances(reference, other)[0] == pytest.approx(expected, rel=1e-7, abs=1e-5)
        assert frechet_distances(reference, other)[0] == pytest.approx(
            frechet_distance_from_stats(reference.mean(0), s1, other.mean(0), s2), rel=1e-7, abs=1e-5)


# ----------------------------------------------------------------------------- KID


def _mmd2_unbiased_brute(a, b):
    d = a.shape[1]
    k = lambda u, v: (u @ v / d + 1) ** 3  # noqa: E731
    m = len(a)
    xx = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(a[i], b[j]) for i in range(m) for j in range(m)) / m**2
    return xx + yy - 2 * xy


def _one_image_patients(n: int, prefix: str = "p"):
    """A collection of n one-image patients (only groups are read by the halvings)."""
    from synthgate.data.collection import Collection

    return Collection(prefix, (prefix,), tuple(Path(f"{prefix}{k}.png") for k in range(n)),
                      tuple(f"{prefix}{k}" for k in range(n)), np.zeros((n, 1), np.int64), ("mass",),
                      tuple(f"{prefix}-patient{k}" for k in range(n)))


def test_a_stand_in_drawn_from_the_real_distribution_has_a_frechet_ratio_near_1_inside_the_real_range():
    """Exchangeable sides: real half B and as many synthetic images against the same half A, over many halvings.
    A smaller release is matched by a smaller half B (Frechet distance grows as samples shrink)."""
    from synthgate.evaluation.realism import frechet_over_halvings

    real = _gauss(400, 16, 1)
    for n in (600, 80):  # a release larger, then much smaller, than a real half
        same = frechet_over_halvings(_gauss(n, 16, 2), real, _one_image_patients(400), seed=0)
        low, high = same.ratio_interval
        real_low, real_high = same.baseline_interval
        assert 0.85 < same.ratio < 1.15 and low < 1 < high, (n, same.ratio, low, high)
        assert real_low < 1 < real_high
        assert len(same.synthetic_runs) == len(same.baseline_runs) == 10
    shifted = frechet_over_halvings(_gauss(600, 16, 2, shift=0.5), real, _one_image_patients(400), seed=0)
    assert shifted.ratio_interval[0] > 2 * same.baseline_interval[1]
    again = frechet_over_halvings(_gauss(600, 16, 2, shift=0.5), real, _one_image_patients(400), seed=0)
    assert np.array_equal(again.synthetic_runs, shifted.synthetic_runs)  # seeded


def test_the_frechet_limit_in_real_spreads_scales_with_how_much_real_halves_vary():
    """A stand-in from the real distribution measures about 0 units, a shifted set many; the unit is how far a real
    half goes above the median, so fewer real images (a wider real range) give a wider allowance, not a false block."""
    from types import SimpleNamespace

    from synthgate.evaluation.realism import FrechetComparison, frechet_over_halvings
    from synthgate.gate.criteria import REGISTRY
    from synthgate.gate.measurements import frechet_in_real_spreads

    def measured(comparison):
        distribution = SimpleNamespace(frechet={"all": comparison}, n_synthetic=100, target="real images")
        return frechet_in_real_spreads(SimpleNamespace(distribution=distribution))

    for n_real in (400, 120):
        real = _gauss(n_real, 16, 1)
        stand_in = measured(frechet_over_halvings(_gauss(300, 16, 2), real, _one_image_patients(n_real), seed=0))
        shifted = measured(frechet_over_halvings(_gauss(300, 16, 2, shift=0.5), real, _one_image_patients(n_real), seed=0))
        assert abs(stand_in.value) < 0.5 and stand_in.low < 0 < stand_in.high, (n_real, stand_in)
        assert shifted.low > 2, (n_real, shifted)
        assert stand_in.baseline == 1.0 and "a real half spans" in stand_in.baseline_text
    flat = measured(FrechetComparison(np.array([2.0, 2.0, 2.0]), np.array([1.0, 1.0, 1.0])))
    assert flat.value is None and "do not vary" in flat.problem  # no unit: cannot be judged, never a pass
    assert REGISTRY["frechet_within_real_spread"].measure is frechet_in_real_spreads


def test_kid_matches_brute_force_unbiased_mmd():
    x, y = _gauss(30, 5, 5), _gauss(30, 5, 6, shift=0.5)
    result = kid(x, y, subsets=1, subset_size=30)  # the whole sets, in some order
    assert isinstance(result, MeanStd)
    assert result.mean == pytest.approx(_mmd2_unbiased_brute(x, y), rel=1e-10)
    assert result.std == 0.0


def test_kid_same_distribution_near_zero_and_shift_positive():
    x, y, z = _gauss(400, 16, 7), _gauss(400, 16, 8), _gauss(400, 16, 9, shift=0.5)
    same = kid(x, y, subsets=20, subset_size=200)
    shifted = kid(x, z, subsets=20, subset_size=200)
    assert abs(same.mean) < 3 * same.std + 1e-3
    assert shifted.mean > 10 * max(same.std, abs(same.mean))
    assert kid(x, z, subsets=5, subset_size=100, seed=3) == kid(x, z, subsets=5, subset_size=100, seed=3)


# ----------------------------------------------------------------------------- chunked neighbours


def test_pairwise_blocks_tile_the_full_matrix():
    x, y = _gauss(23, 4, 10), _gauss(17, 4, 11)
    full = np.full((23, 17), np.nan)
    for i0, j0, block in pairwise_sq_dists_chunked(x, y, chunk=5, device="cpu"):
        assert block.shape[0] <= 5 and block.shape[1] <= 5
        full[i0:i0 + block.shape[0], j0:j0 + block.shape[1]] = block.numpy()
    np.testing.assert_allclose(full, cdist(x, y, "sqeuclidean"), atol=1e-10)


def _brute_knn(q, r, k, metric, exclude_self=False):
    d = cdist(q, r, metric)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, idx, 1), idx


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("chunk", [7, 64, 4096])
def test_knn_matches_brute_force(metric, chunk):
    q, r = _gauss(53, 12, 12), _gauss(41, 12, 13)
    dist, idx = knn(q, r, k=4, chunk=chunk, device="cpu", metric=metric)
    want_d, want_i = _brute_knn(q, r, 4, metric)
    np.testing.assert_allclose(dist, want_d, atol=1e-10)
    np.testing.assert_array_equal(idx, want_i)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_knn_exclude_self_with_chunks_on_both_sides(metric):
    x = _gauss(50, 6, 14)
    dist, idx = knn(x, x, k=3, chunk=8, device="cpu", exclude_self=True, metric=metric)
    want_d, want_i = _brute_knn(x, x, 3, metric, exclude_self=True)
    np.testing.assert_allclose(dist, want_d, atol=1e-10)
    np.testing.assert_array_equal(idx, want_i)
    assert not (idx == np.arange(50)[:, None]).any()


def test_knn_k_larger_than_chunk_and_float32_input():
    q, r = _gauss(20, 5, 15).astype(np.float32), _gauss(30, 5, 16).astype(np.float32)
    dist, idx = knn(q, r, k=10, chunk=3, device="cpu")
    want_d, want_i = _brute_knn(q.astype(np.float64), r.astype(np.float64), 10, "euclidean")
    np.testing.assert_allclose(dist, want_d, rtol=1e-5)
    np.testing.assert_array_equal(idx, want_i)


def test_knn_rejects_bad_input():
    x = _gauss(5, 3, 17)
    with pytest.raises(ValueError, match="k=5"):
        knn(x, x, 5, exclude_self=True, device="cpu")
    with pytest.raises(ValueError, match="same set"):
        knn(x, x[:4], 1, exclude_self=True, device="cpu")
    with pytest.raises(ValueError, match="metric"):
        knn(x, x, 1, metric="manhattan", device="cpu")
    with pytest.raises(ValueError, match="NaN"):
        knn(np.full((2, 3), np.nan), x, 1, device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_knn_cuda_matches_cpu():
    q, r = _gauss(3000, 64, 18), _gauss(2500, 64, 19)
    cpu_d, _ = knn(q, r, 5, chunk=1024, device="cpu")
    gpu_d, _ = knn(q, r, 5, chunk=1024, device="cuda")
    np.testing.assert_allclose(gpu_d, cpu_d, rtol=1e-3, atol=1e-3)


# ----------------------------------------------------------------------------- PRDC


def _prdc_reference(real, fake, k):
    """Direct transcription of Naeem et al.'s reference implementation."""
    r_rad = np.sort(cdist(real, real), axis=1)[:, k]
    f_rad = np.sort(cdist(fake, fake), axis=1)[:, k]
    d = cdist(real, fake)
    return {
        "precision": (d < r_rad[:, None]).any(axis=0).mean(),
        "recall": (d < f_rad[None, :]).any(axis=1).mean(),
        "density": (1 / k) * (d < r_rad[:, None]).sum(axis=0).mean(),
        "coverage": (d.min(axis=1) < r_rad).mean(),
    }


def test_prdc_matches_reference_implementation():
    real, fake = _gauss(120, 5, 20), _gauss(90, 5, 21, shift=0.4) * 1.3
    got = prdc(real, fake, k=5, chunk=32, device="cpu")
    want = _prdc_reference(real, fake, 5)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key


def test_prdc_same_distribution_near_one():
    m = prdc(_gauss(600, 4, 22), _gauss(600, 4, 23), k=5, device="cpu")
    assert m["precision"] > 0.85 and m["recall"] > 0.85
    assert 0.8 < m["density"] < 1.2
    assert m["coverage"] > 0.9
    x = _gauss(100, 4, 24)
    exact = prdc(x, x.copy(), k=5, device="cpu")
    assert exact["precision"] == exact["recall"] == exact["coverage"] == 1.0


def test_prdc_disjoint_distributions_zero():
    m = prdc(_gauss(200, 4, 25), _gauss(200, 4, 26, shift=50.0), k=5, device="cpu")
    assert m == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


# ----------------------------------------------------------------------------- classifier two-sample tests


def _patients(n_patients, per_patient, d, rng, prefix):
    """Features dominated by a per-patient signature: a leak if patients cross folds."""
    centres = 2 * rng.normal(size=(n_patients, d))
    x = np.repeat(centres, per_patient, axis=0) + rng.normal(size=(n_patients * per_patient, d))
    return x, np.repeat([f"{prefix}{p}" for p in range(n_patients)], per_patient)


def test_detectability_same_distribution_is_chance_and_shift_is_detected():
    real, fake = _gauss(200, 10, 27), _gauss(200, 10, 28)
    groups = np.arange(200) // 2
    same = detectability_auroc(real, fake, groups, groups + 1000, n_boot=200)
    assert isinstance(same.auroc, Estimate)
    assert same.scores.shape == (400,) and same.labels.tolist() == [0] * 200 + [1] * 200
    assert 0.35 < same.auroc.value < 0.65
    shifted = detectability_auroc(real, fake + 0.6, groups, groups + 1000, n_boot=200)
    assert shifted.auroc.low > 0.8
    assert detectability_auroc(real, fake, None, None, n_boot=50, seed=4).auroc == \
        detectability_auroc(real, fake, None, None, n_boot=50, seed=4).auroc


def test_detectability_groups_prevent_patient_leakage():
    rng = np.random.default_rng(29)
    real, g_real = _patients(20, 10, 40, rng, "real")
    fake, g_fake = _patients(20, 10, 40, rng, "fake")  # same distribution, other patients
    leaky = detectability_auroc(real, fake, None, None, n_boot=100)
    grouped = detectability_auroc(real, fake, g_real, g_fake, n_boot=100)
    assert leaky.auroc.value > 0.8  # recognises patients, not synthesis
    assert grouped.auroc.value < 0.65


def test_source_identifiability():
    feats = {"real": _gauss(150, 8, 30), "gen_a": _gauss(150, 8, 31), "gen_b": _gauss(150, 8, 32, shift=1.0)}
    groups = {s: np.arange(150) // 3 for s in feats}
    res = source_identifiability(feats, groups, n_boot=100)
    assert res.sources == ["real", "gen_a", "gen_b"]
    assert res.confusion.shape == (3, 3) and res.confusion.sum() == 450
    assert res.scores.shape == (450, 3)
    np.testing.assert_allclose(res.scores.sum(1), 1)
    assert res.auroc["gen_b"].low > 0.9
    assert res.auroc["real"].value < 0.75  # only separable from gen_b
    assert res.confusion[2, 2] > 0.8 * 150
    with pytest.raises(ValueError, match="two sources"):
        source_identifiability({"real": feats["real"]})


# ----------------------------------------------------------------------------- memorisation / diversity


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_nearest_neighbour_similarity_finds_copies(metric):
    train = _gauss(80, 16, 33)
    fake = np.vstack([train[[5, 42]], _gauss(10, 16, 34)])
    idx, sim = nearest_neighbour_similarity(fake, train, metric=metric, device="cpu")
    assert idx[:2].tolist() == [5, 42]
    best = 1.0 if metric == "cosine" else 0.0
    np.testing.assert_allclose(sim[:2], best, atol=1e-6)
    assert (sim[2:] < best - 0.05).all()
    if metric == "cosine":
        brute = 1 - cdist(fake, train, "cosine")
        np.testing.assert_allclose(sim, brute.max(1), atol=1e-10)


def test_shift_tolerant_similarity_finds_moved_copies_of_images_with_shared_anatomy():
    """Every phantom shares the body outline: a copy moved by a few pixels must still match its original."""
    from synthgate.demo.phantoms import render

    originals = np.stack([render(seed) for seed in range(40)]).astype(np.float32) / 255
    moved = np.stack([np.roll(originals[k], (dy, dx), axis=(0, 1))
                      for k, (dy, dx) in enumerate([(0, 0), (2, -1), (-3, 3), (4, 4), (-4, 0)])])
    others = np.stack([render(seed) for seed in range(100, 110)]).astype(np.float32) / 255
    similarity, index = shift_tolerant_similarity(np.concatenate([moved, others]), originals, max_shift=4, device="cpu")
    assert index[:5].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(similarity[:5], 1.0, atol=1e-4)
    assert similarity[5:].max() < 0.9


def test_near_duplicates_within_the_release_use_the_two_stage_pixel_search(tmp_path):
    """compare_distributions counts a synthetic image with a near-duplicate (moved, re-exposed) in the release,
    beside the same share among the real images, and groups them."""
    from synthgate.data.collection import Collection
    from synthgate.demo.phantoms import render
    from synthgate.evaluation.realism import compare_distributions

    def collection(n, prefix):
        return Collection(prefix, (prefix,), tuple(tmp_path / f"{prefix}{k}.png" for k in range(n)),
                          tuple(f"{prefix}{k}" for k in range(n)), np.zeros((n, 1), np.int64), ("mass",),
                          tuple(f"{prefix}-patient{k}" for k in range(n)))

    real = np.stack([render(seed, size=128) for seed in range(40)]).astype(np.float32) / 255
    synthetic = np.stack([render(seed, size=128) for seed in range(100, 130)]).astype(np.float32) / 255
    synthetic[[10, 20]] = np.roll(synthetic[[3, 7]], (2, -3), axis=(1, 2)) ** 0.9  # near-duplicates of 3 and 7
    rng = np.random.default_rng(0)
    features = {"real": rng.normal(size=(40, 8)), "syn": rng.normal(size=(30, 8))}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small searches: see test_memorisation
    try:
        report = compare_distributions(collection(30, "syn"), features["syn"], synthetic, collection(40, "real"),
                                       features["real"], real, "real images", duplicate_similarity=0.95, max_shift=4)
    finally:
        torch.set_num_threads(threads)
    assert report.duplicate_fraction.synthetic == pytest.approx(4 / 30)
    assert report.duplicate_fraction.baseline == 0
    assert sorted(sorted(p.name for p in map(Path, c)) for c in report.duplicate_clusters) == [
        ["syn10.png", "syn3.png"], ["syn20.png", "syn7.png"]]
