"""Pixel-space near-copy search: candidates from stage 1, then an exact comparison of those pairs only.

A synthetic image that copies a real one may have been moved, rescaled, re-exposed,
re-encoded or noised on the way. ``CopyIndex.search`` finds, for each query image, the
reference it is closest to in pixel space, in two stages:

1. Candidates: the union of each query's top k references in two compact 32 px
   embeddings (:mod:`synthgate.measures.neighbours`), plus any candidates the caller
   adds (the evaluating model's feature neighbours). Cost O(n * m) matrix products.
2. Exact comparison of the candidate pairs only, cost O(n * candidates):
   - at 32 px, every shift up to ``max_shift`` and scales 0.95-1.05 (5 steps), the
     best refined to sub-pixel shift and scale by parabolic interpolation;
   - at ``resolution`` (default 128 px), the 3 x 3 shifts of one pixel around that
     estimate, then once more at the interpolated peak.

What is correlated at each step: both images band-passed (difference of Gaussians,
sigma resolution/128 and 6 * resolution/128 px: the small one removes noise and
re-encoding blocks, the large one the smooth shading that differs with exposure and
that all chest films share), then, over the reference's central window, the Pearson
correlation after projecting out the reference set's mean image (the anatomy every
film shares). Correlation is unchanged by contrast and brightness changes;
gamma changes are nearly linear over a band-passed window. A copy scores near 1;
on Kermany chest X-rays planted copies (crop 2% a side and rescale, gamma 0.9, noise
sigma 3, shift 2 px, JPEG quality 75, contrast 0.9, at 128 px) scored at least 0.96,
while no held-out image of another patient reached 0.75 (see bench/README.md).

``max_shift`` is counted in pixels at 64 px (the gate's historical unit).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from synthgate.measures.neighbours import (
    COARSE,
    COARSE_BLUR,
    blur,
    candidates,
    coarse,
    embed,
    parabola_peak,
    pick,
    resample,
    sample,
    unit,
)

SCALES = (0.95, 0.975, 1.0, 1.025, 1.05)  # magnifications of the query tried at 32 px
SCALE_STEP = 0.025
ALIGN_BLUR = float(__import__("os").environ.get("AB", "1.5"))
MAX_SCALE_CHANGE = 0.05
FINE_BLUR = 1 / 128  # band-pass sigmas, as fractions of the image side
WIDE_BLUR = 6 / 128


def band_pass(x: torch.Tensor) -> torch.Tensor:
    """Difference of Gaussians of (n, L, L) images (sigma L/128 minus sigma 6L/128, the wide one computed at L/4)."""
    side = x.shape[-1]
    fine = blur(x, FINE_BLUR * side)
    if side % 4 == 0 and side >= 32:
        small = blur(F.avg_pool2d(x[:, None], 4)[:, 0], WIDE_BLUR * side / 4)
        wide = F.interpolate(small[:, None], size=(side, side), mode="bilinear", align_corners=False)[:, 0]
    else:
        wide = blur(x, WIDE_BLUR * side)
    return fine - wide


def projected(windows: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Rows zero-mean, with their component along ``mean`` (a unit, zero-mean row) removed, unit-norm."""
    x = windows.reshape(len(windows), -1)
    mean = mean.reshape(-1)
    x = x - x.mean(1, keepdim=True)
    x = x - (x @ mean)[:, None] * mean
    return F.normalize(x, dim=1)


def margin_for(side: int, shift: float) -> int:
    """Border left out of the reference window: room for the shift and for a 5% scale change."""
    return int(math.ceil(shift + MAX_SCALE_CHANGE * side / 2))


def lag_correlation(crops: torch.Tensor, reference: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Correlation of each crop's windows at every lag with its reference window, after projecting out ``mean``.

    crops (p, h + 2s, w + 2s); reference (p, h, w) and mean (h, w) prepared by ``projected``
    (zero-mean, unit, reference orthogonal to mean); returns (p, 2s + 1, 2s + 1).
    """
    p, h, w = reference.shape
    count = h * w
    x = crops[:, None]
    numerator = F.conv2d(crops[None], reference[:, None], groups=p)[0]
    along_mean = F.conv2d(x, mean.view(1, 1, h, w))[:, 0]
    sums = F.avg_pool2d(x, (h, w), stride=1)[:, 0] * count
    squares = F.avg_pool2d(x * x, (h, w), stride=1)[:, 0] * count
    return numerator / (squares - sums * sums / count - along_mean * along_mean).clamp_min(1e-12).sqrt()


def peak_offset(values: torch.Tensor) -> torch.Tensor:
    """Sub-pixel position, relative to the middle one, of the peak of three values per row (p, 3)."""
    left, centre, right = values.unbind(1)
    fitted = parabola_peak(left, centre, right, limit=1.5)
    best = values.argmax(1).to(values.dtype) - 1
    return torch.where(left - 2 * centre + right < 0, fitted, best)


class CopyIndex:
    """Reference images prepared for ``search``: their stage-1 embeddings and mean images.

    ``references`` are (m, h, w) arrays of any size and dtype, in one intensity scale
    with the queries; they are kept (not copied) and read again for each candidate.
    """

    def __init__(self, references, max_shift: int = 4, resolution: int = 128, device=None, chunk: int = 4096):
        if len(references) == 0:
            raise ValueError("no reference images to search")
        if resolution < COARSE:
            raise ValueError(f"resolution must be at least {COARSE} px, got {resolution}")
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

    def search(self, queries, k: int = 5, extra: np.ndarray | None = None, exclude_self: bool = False,
               refine: int = 3, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Each query's most similar reference: (similarity, index), both (n,).

        ``k`` candidates per stage-1 embedding; ``extra`` (n, j) adds reference indices
        per query (e.g. feature-space neighbours). ``exclude_self``: the queries are the
        references (near-duplicates within one set), each image's own index is skipped.
        """
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
        best = torch.empty(len(queries), device=self.device)
        index = torch.empty(len(queries), dtype=torch.long, device=self.device)
        for start in range(0, len(queries), chunk):
            rows = slice(start, start + chunk)
            batch = queries[rows] if not exclude_self else self.references[rows]
            similarity = self._compare(images32[rows], batch, pairs[rows], refine)
            best[rows], where = similarity.max(1)
            index[rows] = pairs[rows].gather(1, where[:, None])[:, 0]
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
        mean = unit(self.mean[None, margin:side - margin, margin:side - margin])[0]
        reference = band_pass(resample(self._take(wanted), side, self.device))
        reference = projected(reference[:, margin:side - margin, margin:side - margin], mean)[slot].view(-1, core, core)
        mean = mean.view(core, core)
        query = band_pass(resample(query_images, side, self.device))
        owner = torch.arange(b, device=self.device).repeat_interleave(c)
        to_fine = side / COARSE
        dy, dx = dy.reshape(-1) * to_fine, dx.reshape(-1) * to_fine
        scale = scale.reshape(-1)
        best = torch.empty(b * c, device=self.device)
        for s in range(0, b * c, 256):
            p = slice(s, s + 256)
            images = query[owner[p]]
            crops = sample(images, core + 2, scale[p], dy[p], dx[p])
            corr = lag_correlation(crops, reference[p], mean)  # (p, 3, 3): lags of one pixel around the estimate
            top, where = corr.flatten(1).max(1)
            rows = torch.arange(len(corr), device=self.device)
            sub_y = peak_offset(corr[rows, :, where % 3])
            sub_x = peak_offset(corr[rows, where // 3, :])
            refined = sample(images, core, scale[p], dy[p] + scale[p] * sub_y, dx[p] + scale[p] * sub_x)
            last = (projected(refined, mean.reshape(-1)) * reference[p].reshape(len(refined), -1)).sum(1)
            best[p] = torch.maximum(top, last)
        return torch.full_like(coarse_similarity, -2.0).scatter(1, chosen, best.view(b, c))

    def _take(self, indices: torch.Tensor):
        """The reference images at ``indices`` (as stored: numpy arrays are indexed on the host)."""
        if isinstance(self.references, torch.Tensor):
            return self.references[indices.to(self.references.device)]
        return np.asarray(self.references)[indices.cpu().numpy()]

    def _coarse_alignment(self, query32: torch.Tensor, pairs: torch.Tensor):
        """How well each query matches each candidate at 32 px, and the scale and shift (in pixels at 32 px)
        that align them best: four (b, c) tensors."""
        b, c = pairs.shape
        search = int(math.ceil(self.shift32))
        margin = margin_for(COARSE, search)
        core = COARSE - 2 * margin
        mean = unit(self.template[None, margin:COARSE - margin, margin:COARSE - margin])[0]
        extra_blur = math.sqrt(max(ALIGN_BLUR**2 - COARSE_BLUR**2, 0))
        images = blur(self.images32[pairs.reshape(-1)], extra_blur)
        query32 = blur(query32, extra_blur)
        reference = projected(images[:, margin:COARSE - margin, margin:COARSE - margin], mean)
        reference = reference.view(b, c, -1)
        lags = 2 * search + 1
        ones = torch.ones(b, device=self.device)
        zero = torch.zeros(b, device=self.device)
        rows = []
        for s in SCALES:  # every shifted window of the magnified query, made zero-mean, projected and unit
            crops = sample(query32, core + 2 * search, ones * s, zero, zero)
            patches = F.unfold(crops[:, None], core).transpose(1, 2)  # (b, lags^2, core^2)
            rows.append(projected(patches.reshape(-1, core * core), mean).view(b, lags * lags, -1))
        windows = torch.cat(rows, 1)  # (b, scales * lags^2, core^2)
        corr = torch.bmm(windows, reference.transpose(1, 2))  # (b, scales * lags^2, c)
        corr = corr.permute(0, 2, 1).reshape(b * c, len(SCALES), lags, lags)
        where = corr.flatten(1).argmax(1)
        k, rest = where // (lags * lags), where % (lags * lags)
        iy, ix = rest // lags, rest % lags
        n = torch.arange(b * c, device=self.device)
        sub_y, sub_x = self._peak(corr, n, k, iy, ix, 2), self._peak(corr, n, k, iy, ix, 3)
        sub_k = self._peak(corr, n, k, iy, ix, 1)
        scale = torch.as_tensor(SCALES, device=self.device)[k] + SCALE_STEP * sub_k
        dy = scale * (iy - search + sub_y)
        dx = scale * (ix - search + sub_x)
        return corr.flatten(1).max(1).values.view(b, c), scale.view(b, c), dy.view(b, c), dx.view(b, c)

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
