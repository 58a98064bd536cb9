"""Pixel-space near-copy search: candidates from stage 1, then an exact comparison of those pairs only.

A synthetic image that copies a real one may have been moved, rescaled, re-exposed,
re-encoded or noised on the way. ``CopyIndex.search`` finds, for each query image, the
reference it is closest to in pixel space, in two stages:

1. Candidates: the union of each query's top k references in two compact 32 px
   embeddings (:mod:`synthgate.measures.neighbours`), plus any candidates the caller
   adds (the evaluating model's feature neighbours). Cost O(n * m) matrix products.
2. Exact comparison of the candidate pairs only, cost O(n * candidates):
   - at 32 px, every shift up to ``max_shift`` in half-pixel steps and scales 0.95-1.05
     (5 steps): the best alignment, interpolated to sub-pixel shift and scale, and a
     32 px similarity that picks the ``refine`` best candidates;
   - at ``resolution`` (default 128 px), those candidates only: the 3 x 3 shifts of one
     pixel around that alignment, the interpolated peak, the scale refined by +-1%.

What is correlated: both images band-passed (difference of Gaussians, sigma
max(1, resolution/128) and 6 * resolution/128 px: the small one removes noise and
re-encoding blocks, the large one the smooth shading that differs with exposure),
then, over the reference's central window, the Pearson correlation after projecting
out what every film shares: the reference set's mean image and its first-order changes
when moved or rescaled. Correlation is unchanged by contrast and brightness changes;
a gamma change is nearly linear over a band-passed window.

On Kermany chest X-rays (5,190 references, one image per file), planted copies of 300
images (crop 2% a side and rescale, gamma 0.9, noise sigma 3, shift 2 px, JPEG quality
75, contrast 0.9, at 128 px) were all found, scoring 0.98 or more; each image's best
match among the others scored at most 0.82 (bench/README.md).

``max_shift`` is counted in pixels at 64 px (the gate's historical unit).
"""

from __future__ import annotations

import io
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from synthgate.measures.neighbours import (
    COARSE,
    blur,
    candidates,
    coarse,
    embed,
    parabola_peak,
    pick,
    resample,
    sample,
)

SCALES = (0.95, 0.975, 1.0, 1.025, 1.05)  # magnifications of the query tried at 32 px
SCALE_STEP = 0.025
MAX_SCALE_CHANGE = 0.05
SCALE_REFINE = 0.01  # relative scale step of the last refinement at full resolution
CANDIDATES = 10  # per stage-1 embedding
REFINE = 3  # candidates per query compared at full resolution
MAX_SHIFT = 12  # at 64 px: a fifth of the side; the reference windows must keep most of the image
FINE_BLUR = 1 / 128  # band-pass sigmas, as fractions of the image side
WIDE_BLUR = 6 / 128


def band_pass(x: torch.Tensor) -> torch.Tensor:
    """Difference of Gaussians of (n, L, L) images (sigma L/128 minus sigma 6L/128, the wide one computed at L/4)."""
    side = x.shape[-1]
    fine = blur(x, max(1.0, FINE_BLUR * side))
    if side % 4 == 0 and side >= 32:
        small = blur(F.avg_pool2d(x[:, None], 4)[:, 0], WIDE_BLUR * side / 4)
        wide = F.interpolate(small[:, None], size=(side, side), mode="bilinear", align_corners=False)[:, 0]
    else:
        wide = blur(x, WIDE_BLUR * side)
    return fine - wide


def shared_basis(mean: torch.Tensor) -> torch.Tensor:
    """What every film shares, over a window: the mean image, its vertical and horizontal derivatives and its
    radial derivative (the first-order change of the mean image when moved or rescaled), as orthonormal
    zero-mean rows (4, h, w). Projected out, they leave what is particular to each image, and a shared
    anatomy read a fraction of a pixel off does not count against a copy."""
    h, w = mean.shape
    dy, dx = torch.gradient(mean)
    ys = torch.arange(h, dtype=mean.dtype, device=mean.device)[:, None] - (h - 1) / 2
    xs = torch.arange(w, dtype=mean.dtype, device=mean.device)[None, :] - (w - 1) / 2
    rows = torch.stack([mean, dy, dx, ys * dy + xs * dx]).reshape(4, -1)
    rows = rows - rows.mean(1, keepdim=True)
    q, r = torch.linalg.qr(rows.double().T)
    keep = r.diagonal().abs() > 1e-9 * r.diagonal().abs().max().clamp_min(1e-30)
    return q.T[keep].to(mean.dtype).reshape(-1, h, w)


def projected(windows: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Rows zero-mean, with their components along ``basis`` (orthonormal zero-mean rows) removed, unit-norm."""
    x = windows.reshape(len(windows), -1)
    basis = basis.reshape(len(basis), x.shape[1])
    x = x - x.mean(1, keepdim=True)
    x = x - (x @ basis.T) @ basis
    return F.normalize(x, dim=1)


def margin_for(side: int, shift: float) -> int:
    """Border left out of the reference window: room for the shift and for a 5% scale change."""
    return int(math.ceil(shift + MAX_SCALE_CHANGE * side / 2))


def lag_correlation(crops: torch.Tensor, reference: torch.Tensor, basis: torch.Tensor, step: int = 1) -> torch.Tensor:
    """Correlation of each crop's windows at every lag with its reference windows, after projecting out ``basis``.

    crops (n, H, H); reference (n * c, 1, h, h), c windows per crop, and basis (j, h, h), prepared by
    ``projected`` / ``shared_basis`` (references zero-mean, unit and orthogonal to the basis); windows
    read every ``step``-th crop pixel. Returns (n * c, lags, lags), lags = H - step * (h - 1).
    """
    n, h = len(crops), basis.shape[-1]
    count = h * h
    x = crops[:, None]
    numerator = F.conv2d(crops[None], reference, groups=n, dilation=step)[0]  # (n * c, lags, lags)
    ones = basis.new_ones((1, h, h))
    shared = F.conv2d(x, torch.cat([basis, ones])[:, None], dilation=step)
    along, sums = shared[:, :-1], shared[:, -1]
    squares = F.conv2d(x * x, ones[None], dilation=step)[:, 0]
    spread = (squares - sums * sums / count - (along * along).sum(1)).clamp_min(1e-12).sqrt()
    return (numerator.view(n, -1, *spread.shape[1:]) / spread[:, None]).flatten(0, 1)


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_offset(values: torch.Tensor) -> torch.Tensor:
    """Sub-pixel position, relative to the middle one, of the peak of three values per row (p, 3)."""
    left, centre, right = values.unbind(1)
    fitted = parabola_peak(left, centre, right, limit=1.5)
    best = values.argmax(1).to(values.dtype) - 1
    return torch.where(left - 2 * centre + right < 0, fitted, best)


class CopyIndex:
    """Reference images prepared for ``search``: their stage-1 embeddings and mean images.

    ``references`` are (m, h, w) images of any size and dtype, in one intensity scale
    with the queries (an array, a tensor, or anything indexed like one by slices and
    index arrays); they are kept, not copied, and read again for each candidate.
    """

    def __init__(self, references, max_shift: int = 4, resolution: int = 128, device=None, chunk: int = 4096):
        if len(references) == 0:
            raise ValueError("no reference images to search")
        if resolution < COARSE:
            raise ValueError(f"resolution must be at least {COARSE} px, got {resolution}")
        if not 0 <= max_shift <= MAX_SHIFT:
            raise ValueError(f"max_shift must be in [0, {MAX_SHIFT}] pixels at 64 px, got {max_shift}")
        self.references, self.resolution, self.chunk = references, int(resolution), chunk
        self.device = pick(device)
        self.shift32 = max_shift * COARSE / 64  # the allowed shift, in pixels at 32 px
        self.shift = max_shift * resolution / 64  # and at the comparison resolution
        self.images32 = coarse(references, self.device, chunk)
        self.template = self.images32.mean(0)
        self.embeddings = embed(self.images32, self.template, chunk)
        total = torch.zeros((resolution, resolution), device=self.device)
        for start in range(0, len(references), chunk):
            total += resample(references[start:start + chunk], resolution, self.device).sum(0)
        self.mean = band_pass((total / len(references))[None])[0]

    def search(self, queries, k: int = CANDIDATES, extra: np.ndarray | None = None, exclude_self: bool = False,
               refine: int = REFINE, chunk: int = 256, timings: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each query's most similar reference: (similarity, index), both (n,).

        ``k`` candidates per stage-1 embedding; ``extra`` (n, j) adds reference indices
        per query (e.g. feature-space neighbours); the ``refine`` best of them at 32 px are
        compared at full resolution. ``exclude_self``: the queries are the references
        (near-duplicates within one set), each image's own index is skipped. ``timings``, if
        given, receives the seconds spent in each stage ("candidates", "comparison").
        """
        started = time.perf_counter()
        if exclude_self:
            if len(queries) != len(self.references):
                raise ValueError("exclude_self needs the queries to be the references")
            images32, embeddings = self.images32, self.embeddings
        else:
            images32 = coarse(queries, self.device, self.chunk)
            embeddings = embed(images32, self.template, self.chunk)
        if len(queries) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        pairs = candidates(embeddings, self.embeddings, k, self.chunk, exclude_self)
        if extra is not None and np.size(extra):
            extra = torch.as_tensor(np.asarray(extra), dtype=torch.long, device=self.device).reshape(len(queries), -1)
            if exclude_self:  # an image is not its own near-duplicate
                own = torch.arange(len(queries), device=self.device)[:, None]
                extra = torch.where(extra == own, pairs[:, :1], extra)
            pairs = torch.cat([pairs, extra], 1)
        pairs = pairs.sort(1).values
        if timings is not None:
            _synchronise(self.device)
            timings["candidates"] = timings.get("candidates", 0.0) + time.perf_counter() - started
            started = time.perf_counter()
        best = torch.empty(len(queries), device=self.device)
        index = torch.empty(len(queries), dtype=torch.long, device=self.device)
        for start in range(0, len(queries), chunk):
            rows = slice(start, start + chunk)
            batch = queries[rows] if not exclude_self else self.references[rows]
            similarity = self._compare(images32[rows], batch, pairs[rows], refine)
            best[rows], where = similarity.max(1)
            index[rows] = pairs[rows].gather(1, where[:, None])[:, 0]
        if timings is not None:
            _synchronise(self.device)
            timings["comparison"] = timings.get("comparison", 0.0) + time.perf_counter() - started
        return best.cpu().numpy(), index.cpu().numpy()

    # ------------------------------------------------------------------ stage 2

    def _compare(self, query32: torch.Tensor, query_images, pairs: torch.Tensor, refine: int) -> torch.Tensor:
        """Similarity of each query with each of its candidates, (b, c): the ``refine`` best at 32 px
        compared at full resolution, the others left at -2 (never the best)."""
        coarse_similarity, scale, dy, dx = self._coarse_alignment(query32, pairs)
        repeated = torch.zeros_like(pairs, dtype=torch.bool)
        repeated[:, 1:] = pairs[:, 1:] == pairs[:, :-1]  # pairs come sorted: a candidate found twice counts once
        chosen = coarse_similarity.masked_fill(repeated, -math.inf).topk(min(refine, pairs.shape[1]), dim=1).indices
        scale, dy, dx, pairs = (t.gather(1, chosen) for t in (scale, dy, dx, pairs))
        b, c = pairs.shape
        wanted, slot = torch.unique(pairs.reshape(-1), return_inverse=True)
        side = self.resolution
        margin = margin_for(side, self.shift + 1)
        core = side - 2 * margin
        basis = shared_basis(self.mean[margin:side - margin, margin:side - margin])
        reference = band_pass(resample(self._take(wanted), side, self.device))
        reference = projected(reference[:, margin:side - margin, margin:side - margin], basis)[slot].view(-1, core, core)
        query = band_pass(resample(query_images, side, self.device))
        owner = torch.arange(b, device=self.device).repeat_interleave(c)
        to_fine = side / COARSE
        dy, dx = dy.reshape(-1) * to_fine, dx.reshape(-1) * to_fine
        scale = scale.reshape(-1)
        best = torch.empty(b * c, device=self.device)
        for s in range(0, b * c, 256):
            p = slice(s, s + 256)
            images, wanted_window = query[owner[p]], reference[p].flatten(1)
            crops = sample(images, core + 2, scale[p], dy[p], dx[p])
            corr = lag_correlation(crops, reference[p][:, None], basis)  # (p, 3, 3): lags of a pixel around the estimate
            top, where = corr.flatten(1).max(1)
            rows = torch.arange(len(corr), device=self.device)
            y = dy[p] + scale[p] * peak_offset(corr[rows, :, where % 3])
            x = dx[p] + scale[p] * peak_offset(corr[rows, where // 3, :])
            at_scales = [(projected(sample(images, core, scale[p] * f, y, x), basis) * wanted_window).sum(1)
                         for f in (1 - SCALE_REFINE, 1, 1 + SCALE_REFINE)]
            refined = scale[p] * (1 + SCALE_REFINE * parabola_peak(*at_scales, limit=1.5))
            last = (projected(sample(images, core, refined, y, x), basis) * wanted_window).sum(1)
            best[p] = torch.stack([top, *at_scales, last]).max(0).values
        return torch.full_like(coarse_similarity, -2.0).scatter(1, chosen, best.view(b, c))

    def _take(self, indices: torch.Tensor):
        """The reference images at ``indices`` (as stored: anything but a tensor is indexed on the host)."""
        if isinstance(self.references, torch.Tensor):
            return self.references[indices.to(self.references.device)]
        return self.references[indices.cpu().numpy()]

    def _coarse_alignment(self, query32: torch.Tensor, pairs: torch.Tensor):
        """How well each query matches each candidate at 32 px, and the scale and shift (in pixels at 32 px)
        that align them best: four (b, c) tensors.

        The match is the best correlation of what is particular to the two images (the shared anatomy projected
        out); the alignment is where the whole images correlate best, a smoother peak that sub-sample
        interpolation locates more precisely."""
        b, c = pairs.shape
        search = int(math.ceil(self.shift32))
        margin = margin_for(COARSE, search)
        core = COARSE - 2 * margin
        basis = shared_basis(self.template[margin:COARSE - margin, margin:COARSE - margin])
        windows = self.images32[pairs.reshape(-1), margin:COARSE - margin, margin:COARSE - margin]
        particular = projected(windows, basis).view(b * c, 1, core, core)
        whole = projected(windows, basis[:0]).view(b * c, 1, core, core)
        lags = 4 * search + 1  # half-pixel steps
        ones = torch.ones(b, device=self.device)
        zero = torch.zeros(b, device=self.device)
        similar, aligned = [], []
        for s in SCALES:  # the magnified query sampled every half pixel; windows read every other sample
            crops = sample(query32, 2 * (core + 2 * search) - 1, ones * s / 2, zero, zero)
            similar.append(lag_correlation(crops, particular, basis, step=2).view(b, c, lags, lags))
            aligned.append(lag_correlation(crops, whole, basis[:0], step=2).view(b, c, lags, lags))
        similarity = torch.stack(similar, 2).reshape(b * c, -1).max(1).values
        corr = torch.stack(aligned, 2).reshape(b * c, len(SCALES), lags, lags)
        where = corr.flatten(1).argmax(1)
        k, rest = where // (lags * lags), where % (lags * lags)
        iy, ix = rest // lags, rest % lags
        n = torch.arange(b * c, device=self.device)
        sub_y, sub_x = self._peak(corr, n, k, iy, ix, 2), self._peak(corr, n, k, iy, ix, 3)
        sub_k = self._peak(corr, n, k, iy, ix, 1)
        scale = torch.as_tensor(SCALES, device=self.device)[k] + SCALE_STEP * sub_k
        dy = scale * (iy - 2 * search + sub_y) / 2
        dx = scale * (ix - 2 * search + sub_x) / 2
        return similarity.view(b, c), scale.view(b, c), dy.view(b, c), dx.view(b, c)

    @staticmethod
    def _peak(corr: torch.Tensor, n, k, iy, ix, axis: int) -> torch.Tensor:
        """Sub-sample offset of the peak at (n, k, iy, ix) of ``corr`` along ``axis``; 0 at the grid's edge."""
        position = (k, iy, ix)[axis - 1]
        size = corr.shape[axis]
        if size < 3:
            return torch.zeros_like(position, dtype=corr.dtype)
        inner = position.clamp(1, size - 2)
        at = [n, k, iy, ix]
        values = []
        for step in (-1, 0, 1):
            at[axis] = inner + step
            values.append(corr[tuple(at)])
        return (position == inner) * parabola_peak(*values)


# --------------------------------------------------------------------------- planted copies

PLANTED_KINDS = ("crop", "gamma", "noise", "shift", "jpeg", "contrast")


def plant_copy(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A near-copy of one (h, w) image in [0, 1] as a generator that memorised it might emit.

    crop: 2% cut from each side, rescaled back (bilinear); gamma: x ** 0.9; noise: Gaussian,
    sigma 3 grey levels of 255; shift: 2 px along both axes (random signs, edges repeated);
    jpeg: re-encoded at quality 75; contrast: 0.9 around the image mean.
    """
    from PIL import Image

    x = np.asarray(image, dtype=np.float32)
    h, w = x.shape
    if kind == "crop":
        cut = 0.02
        return np.asarray(Image.fromarray(x).resize(
            (w, h), Image.Resampling.BILINEAR, box=(cut * w, cut * h, (1 - cut) * w, (1 - cut) * h)), np.float32)
    if kind == "gamma":
        return np.clip(x, 0, None) ** 0.9
    if kind == "noise":
        return np.clip(x + rng.normal(0, 3 / 255, x.shape).astype(np.float32), 0, 1)
    if kind == "shift":
        dy, dx = rng.choice([-2, 2], size=2)
        padded = np.pad(x, 2, mode="edge")
        return padded[2 + dy: 2 + dy + h, 2 + dx: 2 + dx + w]
    if kind == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=75)
        return np.asarray(Image.open(buffer), np.float32) / 255
    if kind == "contrast":
        return (x - x.mean()) * 0.9 + x.mean()
    raise ValueError(f"unknown kind of copy {kind!r}; kinds are {PLANTED_KINDS}")


def planted_copy_recall(real_pixels, threshold: float, max_shift: int = 4, resolution: int = 128,
                        sample_size: int = 50, seed: int = 0, kinds=PLANTED_KINDS, index: CopyIndex | None = None,
                        k: int = CANDIDATES, device=None) -> dict[str, float]:
    """Share of planted near-copies the search finds, per kind of copy.

    A sample of ``sample_size`` real images (fixed ``seed``) is copied with each kind of
    ``plant_copy`` at ``resolution``, and each copy searched for among all of
    ``real_pixels`` (pass ``index`` to reuse a ``CopyIndex`` of them). A copy is found
    when the search's best match is its source (or an image with the same pixels) at a
    similarity above ``threshold``. Pixels only: no feature-space candidates are added.
    """
    if index is None:
        index = CopyIndex(real_pixels, max_shift, resolution, device)
    rng = np.random.default_rng(seed)
    sources = np.sort(rng.choice(len(real_pixels), size=min(sample_size, len(real_pixels)), replace=False))
    originals = resample(real_pixels[sources], index.resolution, "cpu").numpy()
    recall = {}
    for kind in kinds:
        copies = np.stack([plant_copy(image, kind, rng) for image in originals])
        similarity, match = index.search(copies, k=k)
        same = match == sources
        for i in np.flatnonzero(~same):  # an identical image elsewhere in the set is as good a match
            same[i] = np.array_equal(real_pixels[match[i:i + 1]], real_pixels[sources[i:i + 1]])
        recall[kind] = float(np.mean(same & (similarity > threshold)))
    return recall
