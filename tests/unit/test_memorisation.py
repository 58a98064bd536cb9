"""The two-stage pixel search for copies: candidates, exact comparison, planted copies, on phantoms and real X-rays."""

import hashlib
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from synthgate.config.settings import RANGES, DistributionSpec, PrivacySpec, read_spec
from synthgate.config.toml import ConfigError, Table
from synthgate.demo.phantoms import render
from synthgate.measures.neighbours import blur, top_k, unit
from synthgate.measures.similarity import PLANTED_KINDS, CopyIndex, plant_copy, planted_copy_recall

KERMANY = Path(__file__).resolve().parents[3] / "shared" / "data" / "kermany-pneumonia" / "train"
THRESHOLD = 0.95


def _phantoms(seeds, size=128, **kwargs) -> np.ndarray:
    return np.stack([render(seed, size=size, **kwargs) for seed in seeds]).astype(np.float32) / 255


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These searches are small: on a shared 2-core machine two OpenMP threads mostly wait for each other
    (measured 10-30x slower than one, see bench/README.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def phantoms():
    return _phantoms(range(60)), _phantoms(range(1000, 1040))


# --------------------------------------------------------------------------- building blocks


def test_top_k_matches_brute_force_in_chunks_and_skips_self():
    rng = np.random.default_rng(0)
    x = unit(torch.as_tensor(rng.normal(size=(37, 8)), dtype=torch.float32))
    y = unit(torch.as_tensor(rng.normal(size=(23, 8)), dtype=torch.float32))
    values, indices = top_k(x, y, 4, chunk=5)
    brute = (x @ y.T).topk(4, dim=1)
    torch.testing.assert_close(values, brute.values)
    assert torch.equal(indices, brute.indices)
    values, indices = top_k(x, x, 3, chunk=7, exclude_self=True)
    full = x @ x.T
    full.fill_diagonal_(-float("inf"))
    assert torch.equal(indices, full.topk(3, dim=1).indices)
    with pytest.raises(ValueError, match="same set"):
        top_k(x, y, 2, exclude_self=True)


def test_blur_is_a_separable_gaussian_with_replicated_edges():
    x = torch.randn(3, 20, 17)
    radius = 3
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-taps**2 / 2)
    kernel /= kernel.sum()
    padded = F.pad(x[:, None], (radius,) * 4, mode="replicate")
    expected = F.conv2d(F.conv2d(padded, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))[:, 0]
    torch.testing.assert_close(blur(x, 1.0), expected)


def test_resolution_is_a_range_checked_setting():
    assert DistributionSpec().resolution == PrivacySpec().resolution == 128
    assert RANGES["resolution"] == (32, 512)
    assert read_spec(DistributionSpec, Table({"resolution": 64}, Path("p.toml"), "settings.distribution")).resolution == 64
    for bad in (16, 1024, float("nan")):
        with pytest.raises(ConfigError, match="resolution"):
            read_spec(DistributionSpec, Table({"resolution": bad}, Path("p.toml"), "settings.distribution"))


def test_index_refuses_what_it_cannot_search(phantoms):
    references, _ = phantoms
    with pytest.raises(ValueError, match="resolution"):
        CopyIndex(references, resolution=16)
    with pytest.raises(ValueError, match="max_shift"):
        CopyIndex(references, max_shift=20)
    with pytest.raises(ValueError, match="no reference"):
        CopyIndex(references[:0])


# --------------------------------------------------------------------------- the search on phantoms


@pytest.mark.parametrize("kind", PLANTED_KINDS)
def test_planted_copies_of_phantoms_are_found_and_other_patients_are_not(phantoms, kind):
    references, others = phantoms
    rng = np.random.default_rng(1)
    copies = np.stack([plant_copy(image, kind, rng) for image in references[:20]])
    index = CopyIndex(references, device="cpu")
    similarity, match = index.search(copies)
    assert match.tolist() == list(range(20))
    assert similarity.min() > THRESHOLD
    similarity, _ = index.search(others)
    assert similarity.max() < 0.9


def test_moved_copies_within_max_shift_and_any_input_size_are_found(phantoms):
    references, _ = phantoms
    shifts = [(0, 0), (3, -2), (-5, 5), (6, 0), (-7, -1)]  # at 128 px; max_shift 4 at 64 px allows 8
    doubled = np.stack([np.kron(np.roll(references[k], d, axis=(0, 1)), np.ones((2, 2), np.float32))
                        for k, d in enumerate(shifts)])  # 256 px queries, brought down to 128 px by area
    similarity, match = CopyIndex(references, max_shift=4, resolution=128).search(doubled)
    assert match.tolist() == [0, 1, 2, 3, 4]
    assert similarity.min() > 0.97
    half = references.reshape(-1, 64, 2, 64, 2).mean((2, 4))
    similarity, match = CopyIndex(half, max_shift=4, resolution=64).search(doubled)
    assert match.tolist() == [0, 1, 2, 3, 4]
    assert similarity.min() > 0.93  # at 64 px a half-pixel shift (5 px at 128) costs more: 0.948 here


def test_near_duplicates_within_one_set_skip_each_image_itself(phantoms):
    references, _ = phantoms
    images = np.concatenate([references[:10], references[[2, 7]] * 0.9 + 0.05])
    similarity, partner = CopyIndex(images).search(images, exclude_self=True)
    assert partner[[2, 7, 10, 11]].tolist() == [10, 11, 2, 7]
    assert (similarity[[2, 7, 10, 11]] > 0.99).all()
    assert np.delete(similarity, [2, 7, 10, 11]).max() < 0.9
    assert (partner != np.arange(len(images))).all()


def test_feature_candidates_extend_the_search(phantoms):
    """A copy the pixel embeddings would not rank (moved by more than max_shift) is still compared when given as a
    candidate: the exact comparison then decides, and it does not find a match beyond max_shift."""
    references, _ = phantoms
    far = np.roll(references[3], 30, axis=1)[None]
    index = CopyIndex(references, max_shift=4)
    similarity, match = index.search(far, k=1, extra=np.array([[3]]))
    assert similarity[0] < THRESHOLD  # too far moved to count as a copy at max_shift 4 ...
    within = np.roll(references[3], 4, axis=1)[None]
    similarity, match = index.search(within, k=1, extra=np.array([[3]]))
    assert match[0] == 3 and similarity[0] > 0.99  # ... one within it does


def test_planted_copy_recall_reports_every_kind(phantoms):
    references, _ = phantoms
    recall = planted_copy_recall(references, THRESHOLD, sample_size=10, seed=3)
    assert set(recall) == set(PLANTED_KINDS)
    assert all(value == 1.0 for value in recall.values())
    with pytest.raises(ValueError, match="unknown kind"):
        plant_copy(references[0], "mirror", np.random.default_rng(0))


def _collection(n: int, prefix: str):
    from synthgate.data.collection import Collection

    return Collection(prefix, (prefix,), tuple(Path(f"/images/{prefix}{k}.png") for k in range(n)),
                      tuple(f"{prefix}{k}" for k in range(n)), np.zeros((n, 1), np.int64), ("finding",),
                      tuple(f"{prefix}-patient{k}" for k in range(n)))


def _features(images: np.ndarray) -> np.ndarray:
    """Stand-in model features: the images at 8 px (what a model sees of a copy is near what it sees of the original)."""
    return images.reshape(len(images), 8, 16, 8, 16).mean((2, 4)).reshape(len(images), -1)


def test_find_memorised_flags_copies_beside_the_real_baseline_and_the_planted_recall(phantoms):
    from synthgate.evaluation.realism import find_memorised

    real, others = phantoms
    rng = np.random.default_rng(2)
    copies = np.stack([plant_copy(real[k], kind, rng) for k, kind in enumerate(PLANTED_KINDS)])
    synthetic = np.concatenate([others[:30], copies])
    report = find_memorised(_collection(len(synthetic), "syn"), synthetic, _features(synthetic),
                            {"source": (_collection(len(real), "real"), real, _features(real))},
                            THRESHOLD, max_shift=4, planted_sample=12)
    assert sorted((p.synthetic, p.real) for p in report.flagged) == [
        (f"/images/syn{30 + k}.png", f"/images/real{k}.png") for k in range(len(PLANTED_KINDS))]
    similarity, index = report.matches["source"]
    assert similarity[:30].max() < 0.9 and (similarity[30:] > THRESHOLD).all()
    assert report.baseline["source"] < 0.9
    assert report.planted_recall == {kind: 1.0 for kind in PLANTED_KINDS}
    assert report.planted_recall_by_set["source"] == report.planted_recall
    assert len(report.worst_pairs) == 8 and report.worst_pairs[0].similarity == similarity.max()
    assert report.resolution == 128 and set(report.feature_neighbours) == {"source"}


# --------------------------------------------------------------------------- real chest X-rays


def _patient(name: str) -> str:
    match = re.match(r"(person\d+)_", name) or re.match(r"(NORMAL2-IM-\d+)-", name) or re.match(r"(IM-\d+)-", name)
    return match.group(1) if match else name


def _kermany(count: int, size: int = 128) -> np.ndarray:
    """One image per patient, byte-identical files once, in a fixed shuffled order, as [0, 1] arrays at ``size``."""
    from PIL import Image

    paths = sorted(KERMANY.glob("*/*.jpeg"))
    np.random.default_rng(0).shuffle(paths)
    patients, digests, images = set(), set(), []
    for path in paths:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if _patient(path.name) in patients or digest in digests:
            continue
        patients.add(_patient(path.name))
        digests.add(digest)
        grey = Image.open(path).convert("L")
        images.append(np.asarray(grey.resize((size, size), Image.Resampling.BOX), np.float32) / 255)
        if len(images) == count:
            break
    return np.stack(images)


@pytest.mark.skipif(not KERMANY.is_dir(), reason=f"real chest X-rays not available ({KERMANY} absent)")
def test_planted_copies_of_real_xrays_are_found_and_other_patients_are_not():
    """100 source X-rays, a copy of each of every kind (crop 2% a side and rescale, gamma 0.9, noise sigma 3,
    shift 2 px, JPEG quality 75, contrast 0.9), 200 held-out X-rays of other patients: >= 99% of each kind found
    above 0.95, no held-out image flagged."""
    start = time.monotonic()
    images = _kermany(300)
    sources, held_out = images[:100], images[100:]
    index = CopyIndex(sources, max_shift=4, resolution=128)
    rng = np.random.default_rng(0)
    for kind in PLANTED_KINDS:
        copies = np.stack([plant_copy(image, kind, rng) for image in sources])
        similarity, match = index.search(copies)
        found = (match == np.arange(len(sources))) & (similarity > THRESHOLD)
        assert found.mean() >= 0.99, (kind, found.mean(), np.sort(similarity)[:3])
    similarity, _ = index.search(held_out)
    assert similarity.max() < THRESHOLD
    assert similarity.max() < 0.85  # by a wide margin: copies score >= ~0.97
    assert time.monotonic() - start < 60
