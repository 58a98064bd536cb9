"""Feature-space comparisons of real and synthetic images.

Inputs are feature matrices of shape (n, d) (e.g. d = 1024 DenseNet features).
Neighbour searches go through ``pairwise_sq_dists_chunked``, which works on
blocks of at most ``chunk x chunk`` distances, so 100k x 100k comparisons fit on
a GPU and a few thousand run comfortably on CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from synthgate.measures.metrics import Estimate, MeanStd, bootstrap_metrics

DISTANCE_METRICS = ("euclidean", "cosine")


def _features(x, name: str, keep_float_dtype: bool = False) -> np.ndarray:
    """Validated (n, d) float array; ``keep_float_dtype`` avoids doubling big float32 inputs."""
    a = np.asarray(x)
    if not (keep_float_dtype and np.issubdtype(a.dtype, np.floating)):
        a = a.astype(np.float64)
    if a.ndim != 2 or len(a) == 0:
        raise ValueError(f"{name} must be a non-empty (n, d) array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


# --------------------------------------------------------------------------- FD / KID


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    The trace of sqrtm(sigma1 @ sigma2) is computed from symmetric eigenvalue
    problems (it equals the sum of square roots of the eigenvalues of
    sigma1^1/2 sigma2 sigma1^1/2): exact for covariance matrices, stable when
    they are singular (fewer samples than dimensions), and ~10x faster than
    scipy's general ``sqrtm`` on 1024-d features.
    """
    sigma1 = np.atleast_2d(sigma1).astype(np.float64)
    return _frechet_to(np.atleast_1d(mu1).astype(np.float64), sigma1, _covariance_root(sigma1), mu2, sigma2)


def _covariance_root(sigma: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(sigma)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _frechet_to(mu1: np.ndarray, sigma1: np.ndarray, root1: np.ndarray, mu2, sigma2) -> float:
    mu2, sigma2 = np.atleast_1d(mu2).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    trace_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ sigma2 @ root1), 0, None)).sum()
    diff = mu1 - mu2
    fd = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_covmean
    return max(float(fd), 0.0)  # clip rounding noise below the true minimum of 0


def frechet_distance(x, y) -> float:
    """Fréchet (FID-style) distance between Gaussian fits of two feature sets."""
    return frechet_distances(y, x)[0]


def frechet_distances(reference, *others) -> list[float]:
    """The Fréchet distance of each of ``others`` to ``reference``: with fewer samples than dimensions from the
    samples themselves (:func:`_trace_sqrt_from_samples`, exact, ~20x faster on a few hundred 1024-d features),
    else from the covariances, the root of the reference's (the costly part) computed once."""
    reference = _features(reference, "reference")
    others = [_features(x, "x") for x in others]
    if min(len(x) for x in (reference, *others)) < 2:
        raise ValueError("frechet_distance needs at least two samples per set")
    mu, centred = reference.mean(0), reference - reference.mean(0)
    sigma, root = None, None
    distances = []
    for x in others:
        if min(len(reference), len(x)) < reference.shape[1]:
            x_centred = x - x.mean(0)
            traces = _sum_of_squares(centred) / (len(centred) - 1) + _sum_of_squares(x_centred) / (len(x) - 1)
            fd = np.sum((mu - x.mean(0)) ** 2) + traces - 2 * _trace_sqrt_from_samples(centred, x_centred)
            distances.append(max(float(fd), 0.0))
            continue
        if sigma is None:
            sigma = np.atleast_2d(np.cov(reference, rowvar=False))
            root = _covariance_root(sigma)
        distances.append(_frechet_to(mu, sigma, root, x.mean(0), np.cov(x, rowvar=False)))
    return distances


def _sum_of_squares(a: np.ndarray) -> float:
    return float(np.einsum("ij,ij->", a, a))  # trace(a.T @ a), not formed


def _trace_sqrt_from_samples(a: np.ndarray, b: np.ndarray) -> float:
    """trace(sqrtm(cov(a) @ cov(b))) from centred samples a (n, d) and b (m, d): the non-zero eigenvalues of
    (a.T a)(b.T b) are those of (a b.T)(b a.T), the squared singular values of the (n, m) matrix a b.T, so the
    trace is their sum over sqrt((n - 1)(m - 1)), with no d x d matrix formed."""
    singular_values = np.linalg.svd(a @ b.T, compute_uv=False)
    return float(singular_values.sum() / np.sqrt((len(a) - 1) * (len(b) - 1)))


def kid(x, y, subsets: int = 50, subset_size: int = 1000, seed: int = 0) -> MeanStd:
    """Kernel Inception Distance: unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3.

    Averaged over ``subsets`` random subsets drawn without replacement (size
    capped by the smaller set); std uses ddof=0 as torch-fidelity does.  Unlike
    FD it is unbiased, so it can be compared across sample sizes and may be < 0.
    """
    x, y = _features(x, "x"), _features(y, "y")
    d = x.shape[1]
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise ValueError("kid needs subsets of at least two samples")
    rng = np.random.default_rng(seed)
    mmds = np.empty(subsets)
    for i in range(subsets):
        a = x[rng.choice(len(x), m, replace=False)]
        b = y[rng.choice(len(y), m, replace=False)]
        k_aa = (a @ a.T / d + 1) ** 3
        k_bb = (b @ b.T / d + 1) ** 3
        k_ab = (a @ b.T / d + 1) ** 3
        mmds[i] = ((k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
                   + (k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
                   - 2 * k_ab.mean())
    return MeanStd(float(mmds.mean()), float(mmds.std()))


# --------------------------------------------------------------------------- neighbours


def _device_dtype(device, dtype: torch.dtype | None = None) -> tuple[torch.device, torch.dtype]:
    """CUDA when available unless told otherwise; float64 on CPU, float32 on CUDA."""
    dev = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = torch.float32 if dev.type == "cuda" else torch.float64
    return dev, dtype


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (zero rows stay zero): cosine similarity becomes a dot product."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def pairwise_sq_dists_chunked(x, y, chunk: int = 4096, device=None,
                              dtype: torch.dtype | None = None) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield ``(i0, j0, block)`` with ``block[a, b] = |x[i0+a] - y[j0+b]|^2``.

    Blocks come row-block by row-block, columns in order, each at most
    ``chunk x chunk``; the full n x m matrix never exists.  Uses
    |x|^2 + |y|^2 - 2 x.y (one matmul per block), clamped at 0.  ``dtype``
    defaults to float64 on CPU (exact enough to compare with numpy) and float32
    on CUDA (speed).
    """
    dev, dtype = _device_dtype(device, dtype)
    xt = torch.as_tensor(np.asarray(x), dtype=dtype, device=dev)
    yt = torch.as_tensor(np.asarray(y), dtype=dtype, device=dev)
    if xt.ndim != 2 or yt.ndim != 2 or xt.shape[1] != yt.shape[1]:
        raise ValueError(f"expected (n, d) and (m, d) arrays, got {tuple(xt.shape)} and {tuple(yt.shape)}")
    y_sq = (yt * yt).sum(1)
    for i0 in range(0, len(xt), chunk):
        xb = xt[i0:i0 + chunk]
        x_sq = (xb * xb).sum(1, keepdim=True)
        for j0 in range(0, len(yt), chunk):
            block = x_sq + y_sq[j0:j0 + chunk] - 2 * (xb @ yt[j0:j0 + chunk].T)
            yield i0, j0, block.clamp_(min=0)


def _knn_sq(q: np.ndarray, r: np.ndarray, k: int, chunk: int, device,
            exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
    """Squared-distance k-NN, merging per-block top-k into a running top-k."""
    if exclude_self and len(q) != len(r):
        raise ValueError("exclude_self needs query and reference to be the same set")
    available = len(r) - int(exclude_self)
    if not 1 <= k <= available:
        raise ValueError(f"k={k} must be between 1 and {available}")
    out_d, out_i = [], []
    best_d = best_i = None
    for i0, j0, block in pairwise_sq_dists_chunked(q, r, chunk, device):
        if exclude_self:
            rows = torch.arange(i0, i0 + len(block), device=block.device)
            own = (rows >= j0) & (rows < j0 + block.shape[1])
            block[own.nonzero().squeeze(1), rows[own] - j0] = torch.inf
        d, i = torch.topk(block, min(k, block.shape[1]), dim=1, largest=False)
        i += j0
        if j0 == 0:
            best_d, best_i = d, i
        else:
            cat_d = torch.cat([best_d, d], 1)
            best_d, pos = torch.topk(cat_d, min(k, cat_d.shape[1]), dim=1, largest=False)
            best_i = torch.cat([best_i, i], 1).gather(1, pos)
        if j0 + block.shape[1] == len(r):
            out_d.append(best_d.cpu())
            out_i.append(best_i.cpu())
    return torch.cat(out_d).double().numpy(), torch.cat(out_i).numpy()


def knn(query, reference, k: int, chunk: int = 4096, device=None, exclude_self: bool = False,
        metric: str = "euclidean") -> tuple[np.ndarray, np.ndarray]:
    """k nearest references of each query row: ``(distances, indices)``, both (n, k).

    Sorted nearest first.  ``metric="euclidean"`` gives L2 distances;
    ``"cosine"`` gives cosine distances 1 - cos(q, r).  ``exclude_self`` (query
    is reference) skips each item's own index, not other exact duplicates.
    """
    if metric not in DISTANCE_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {DISTANCE_METRICS}")
    q = _features(query, "query", keep_float_dtype=True)
    r = _features(reference, "reference", keep_float_dtype=True)
    if metric == "cosine":
        q, r = unit_rows(q), unit_rows(r)
    sq, idx = _knn_sq(q, r, k, chunk, device, exclude_self)
    dist = sq / 2 if metric == "cosine" else np.sqrt(sq)  # unit vectors: |a-b|^2 = 2 - 2cos
    return dist, idx


def prdc(real, fake, k: int = 5, chunk: int = 4096, device=None) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020), Euclidean.

    Precision: share of fakes inside some real k-NN ball (fidelity); recall:
    share of reals inside some fake ball (diversity); density counts ball
    memberships (robust to real outliers); coverage: share of real balls that
    contain a fake.  Balls are open, as in the reference implementation.
    """
    real = _features(real, "real", keep_float_dtype=True)
    fake = _features(fake, "fake", keep_float_dtype=True)
    dev, dtype = _device_dtype(device)
    r_radius_sq = torch.as_tensor(_knn_sq(real, real, k, chunk, dev, True)[0][:, -1], dtype=dtype, device=dev)
    f_radius_sq = torch.as_tensor(_knn_sq(fake, fake, k, chunk, dev, True)[0][:, -1], dtype=dtype, device=dev)
    in_real_ball = torch.zeros(len(fake), dtype=torch.bool, device=dev)
    ball_count = torch.zeros(len(fake), dtype=torch.float64, device=dev)
    in_fake_ball = torch.zeros(len(real), dtype=torch.bool, device=dev)
    nearest_fake = torch.full((len(real),), torch.inf, dtype=dtype, device=dev)
    for i0, j0, block in pairwise_sq_dists_chunked(fake, real, chunk, dev):  # rows: fakes
        rows, cols = slice(i0, i0 + block.shape[0]), slice(j0, j0 + block.shape[1])
        inside_real = block < r_radius_sq[cols]
        in_real_ball[rows] |= inside_real.any(1)
        ball_count[rows] += inside_real.sum(1)
        in_fake_ball[cols] |= (block < f_radius_sq[rows, None]).any(0)
        nearest_fake[cols] = torch.minimum(nearest_fake[cols], block.min(0).values)
    return {
        "precision": in_real_ball.double().mean().item(),
        "recall": in_fake_ball.double().mean().item(),
        "density": ball_count.sum().item() / (k * len(fake)),
        "coverage": (nearest_fake < r_radius_sq).double().mean().item(),
    }


# --------------------------------------------------------------------------- classifier tests


@dataclass(frozen=True, eq=False)  # arrays inside: compare fields explicitly
class Detectability:
    """Out-of-fold real-vs-fake classifier result; AUROC near 0.5 = indistinguishable."""

    auroc: Estimate
    scores: np.ndarray  # out-of-fold P(fake), real rows first, then fake rows
    labels: np.ndarray  # 0 = real, 1 = fake


@dataclass(frozen=True, eq=False)
class SourceIdentifiability:
    """Out-of-fold multi-class result: how well each source can be told apart."""

    sources: list[str]
    auroc: dict[str, Estimate]  # one-vs-rest, per source
    confusion: np.ndarray  # rows: true source, columns: predicted, in ``sources`` order
    scores: np.ndarray  # out-of-fold class probabilities, (n, n_sources)
    labels: np.ndarray  # index into ``sources``


def _classifier(seed: int):
    """Strong L2 (C=0.01): 1024-d features and ~1000 images are nearly separable by chance;
    the penalty keeps the test honest and lbfgs converges in a fraction of a second."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000, random_state=seed))


def _groups(groups, n: int, name: str) -> np.ndarray:
    """Group labels as strings; ``None`` makes every image its own group."""
    if groups is None:
        return np.array([f"{name}#{i}" for i in range(n)])
    g = np.asarray(groups).astype(str)
    if g.shape != (n,):
        raise ValueError(f"groups for {name} must have shape ({n},), got {g.shape}")
    return g


def _out_of_fold_proba(x, labels, groups, n_splits: int, seed: int) -> np.ndarray:
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return cross_val_predict(_classifier(seed), x, labels, groups=groups, cv=cv, method="predict_proba")


def detectability_auroc(real, fake, groups_real, groups_fake, n_splits: int = 5, seed: int = 0,
                        n_boot: int = 1000) -> Detectability:
    """Classifier two-sample test: can standardised logistic regression tell fake from real?

    Folds are grouped (StratifiedGroupKFold) so no patient/group is in both the
    training and the test fold; otherwise the classifier could recognise
    patients rather than synthesis artefacts.  Equal group labels across the two
    sets are one group (e.g. a synthetic image generated from that patient).
    The CI resamples images, not groups, so it is optimistic when groups are large.
    """
    real, fake = _features(real, "real"), _features(fake, "fake")
    x = np.vstack([real, fake])
    labels = np.r_[np.zeros(len(real), int), np.ones(len(fake), int)]
    groups = np.r_[_groups(groups_real, len(real), "real"), _groups(groups_fake, len(fake), "fake")]
    scores = _out_of_fold_proba(x, labels, groups, n_splits, seed)[:, 1]
    auroc = bootstrap_metrics(labels, scores, 0.5, n_boot=n_boot, seed=seed)["auroc"]
    return Detectability(auroc, scores, labels)


def source_identifiability(features_by_source: dict[str, np.ndarray],
                           groups_by_source: dict[str, np.ndarray] | None = None,
                           n_splits: int = 5, seed: int = 0, n_boot: int = 1000) -> SourceIdentifiability:
    """Multi-class version of ``detectability_auroc`` (e.g. real vs several generators).

    Multinomial logistic regression with grouped out-of-fold predictions;
    reports one-vs-rest AUROC per source and the confusion matrix.  A source
    missing from ``groups_by_source`` has every image as its own group.
    """
    sources = list(features_by_source)
    if len(sources) < 2:
        raise ValueError("source_identifiability needs at least two sources")
    groups_by_source = groups_by_source or {}
    feats = [_features(features_by_source[s], s) for s in sources]
    x = np.vstack(feats)
    labels = np.concatenate([np.full(len(f), c) for c, f in enumerate(feats)])
    groups = np.concatenate([_groups(groups_by_source.get(s), len(f), s) for s, f in zip(sources, feats)])
    proba = _out_of_fold_proba(x, labels, groups, n_splits, seed)
    auroc = {s: bootstrap_metrics(labels == c, proba[:, c], 0.5, n_boot=n_boot, seed=seed)["auroc"]
             for c, s in enumerate(sources)}
    confusion = confusion_matrix(labels, proba.argmax(1), labels=range(len(sources)))
    return SourceIdentifiability(sources, auroc, confusion, proba, labels)


# --------------------------------------------------------------------------- memorisation / diversity


def nearest_neighbour_similarity(fake, reference, metric: str = "cosine", chunk: int = 4096,
                                 device=None) -> tuple[np.ndarray, np.ndarray]:
    """For each fake, the index of its closest reference (e.g. training) item and the similarity.

    Similarity is cosine similarity for ``"cosine"`` and minus the L2 distance
    for ``"euclidean"``, so higher always means closer (a memorisation suspect).
    """
    dist, idx = knn(fake, reference, 1, chunk, device, metric=metric)
    sim = 1 - dist[:, 0] if metric == "cosine" else -dist[:, 0]
    return idx[:, 0], sim


def shift_tolerant_similarity(queries, references, max_shift: int = 4, chunk: int = 2048,
                              exclude_self: bool = False, device=None) -> tuple[np.ndarray, np.ndarray]:
    """Each query's best match among ``references`` in pixel space, allowing small shifts.

    Images (n, h, w) are compared as residuals from the references' mean image
    (so that shared anatomy does not count as similarity), by Pearson correlation
    of a query window at every integer shift up to ``max_shift`` pixels with the
    references' central crop, the mean being subtracted after the shift: a
    near-copy that was moved by a few pixels still correlates highly, two different
    patients do not. Returns (best similarity, index of the best reference) per query.
    References are processed ``chunk`` at a time, so memory stays bounded.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    q = torch.as_tensor(np.asarray(queries, dtype=np.float32), device=device)
    r = torch.as_tensor(np.asarray(references, dtype=np.float32), device=device)
    if q.shape[1:] != r.shape[1:]:
        raise ValueError(f"queries are {tuple(q.shape[1:])} images, references {tuple(r.shape[1:])}")
    h, w = r.shape[1:]
    crop = (slice(max_shift, h - max_shift), slice(max_shift, w - max_shift))
    mean = r.mean(0)[crop]  # subtracted after each shift, so that a moved copy's residual is the original's

    def unit(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1)
        return torch.nn.functional.normalize(x - x.mean(1, keepdim=True), dim=1)

    best = torch.full((len(q),), -2.0, device=device)
    index = torch.zeros(len(q), dtype=torch.long, device=device)
    for start in range(0, len(r), chunk):
        ref = unit(r[start : start + chunk, crop[0], crop[1]] - mean)
        for dy in range(-max_shift, max_shift + 1):
            for dx in range(-max_shift, max_shift + 1):
                shifted = unit(q[:, max_shift + dy : h - max_shift + dy, max_shift + dx : w - max_shift + dx] - mean)
                sims = shifted @ ref.T
                if exclude_self:
                    rows = torch.arange(len(q), device=device)
                    inside = (rows >= start) & (rows < start + len(ref))
                    sims[rows[inside], rows[inside] - start] = -2.0
                value, where = sims.max(1)
                better = value > best
                best[better], index[better] = value[better], where[better] + start
    return best.cpu().numpy(), index.cpu().numpy()
