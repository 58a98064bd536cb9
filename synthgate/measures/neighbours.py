"""Stage 1 of the pixel-space copy search: compact embeddings and chunked top-k neighbours.

Comparing every synthetic image with every real one at full resolution does not
scale (10k x 100k pairs), so a copy search first narrows each query down to a few
candidates by nearest-neighbour search in two compact embeddings of the same
32 x 32 images (area-downsampled, lightly blurred, each zero-mean and unit-norm):

- ``plain``: the whole 32 x 32 image. Tolerates what barely moves pixels at 32 px:
  noise, re-encoding, gamma and contrast changes, scale changes of a few percent,
  shifts of a pixel or two at 128 px.
- ``aligned``: the central 24 x 24 window after moving each image (with sub-pixel
  precision) to where it best matches the reference set's mean image. A copy moved
  by several pixels is moved back by the same amount, so larger shifts are tolerated.

Candidates are the union of each embedding's top k (and whatever other candidates
the caller adds, e.g. the evaluating model's feature neighbours). On Kermany chest
X-rays (5,190 references), planted copies of six kinds (bench/README.md) had their
source among the top 5 of the union in 300 of 300 cases each; copies moved by 8 px
along both axes at 128 px (the default max_shift's limit) in 96% at k = 5, 97-99% at k = 10.

Top-k runs as chunked matrix products (float32; CUDA when available), one
``chunk x chunk`` block of similarities at a time merged into a running top k, so
memory stays bounded whatever the set sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

COARSE = 32  # side of the stage-1 images, in pixels
COARSE_BLUR = 1.0  # Gaussian sigma at 32 px: noise and re-encoding blocks fade, structure stays
ALIGN_SEARCH = 3  # +- pixels at 32 px searched when aligning to the mean image (12 px at 128)
ALIGN_MARGIN = 4  # border left out of the aligned window at 32 px


def pick(device=None) -> torch.device:
    """The device asked for, else CUDA when available, else the CPU."""
    return torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")


def resample(images, size: int, device=None) -> torch.Tensor:
    """(n, h, w) images of any float or integer dtype as (n, size, size) float32: area-averaged when
    shrinking (an exact box average at integer ratios), bilinear when enlarging."""
    x = torch.as_tensor(np.asarray(images), device=pick(device)).float()
    if x.ndim != 3:
        raise ValueError(f"expected (n, height, width) images, got shape {tuple(x.shape)}")
    if x.shape[1:] == (size, size):
        return x
    x = x[:, None]
    if x.shape[2] >= size and x.shape[3] >= size:
        return F.adaptive_avg_pool2d(x, size)[:, 0]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[:, 0]


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (n, h, w) images, edges replicated (weighted sums of shifted copies:
    far faster on CPU than a one-channel convolution)."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-taps**2 / (2 * sigma * sigma))
    kernel = (kernel / kernel.sum()).tolist()
    padded = F.pad(x[:, None], (radius, radius, radius, radius), mode="replicate")[:, 0]
    for dim in (1, 2):
        size = padded.shape[dim] - 2 * radius
        out = padded.narrow(dim, 0, size) * kernel[0]
        for k in range(1, len(kernel)):
            out.add_(padded.narrow(dim, k, size), alpha=kernel[k])
        padded = out
    return padded


def coarse(images, device=None, chunk: int = 4096) -> torch.Tensor:
    """Every image at 32 x 32, blurred: what stage 1 and the first alignment of stage 2 look at."""
    n = len(images)
    out = torch.empty((n, COARSE, COARSE), device=pick(device))
    for start in range(0, n, chunk):
        out[start:start + chunk] = blur(resample(images[start:start + chunk], COARSE, device), COARSE_BLUR)
    return out


def unit(x: torch.Tensor) -> torch.Tensor:
    """Rows (flattened) made zero-mean and unit-norm: a dot product is then a Pearson correlation."""
    x = x.reshape(len(x), -1)
    return F.normalize(x - x.mean(1, keepdim=True), dim=1)


def window_correlation(images: torch.Tensor, template: torch.Tensor, search: int) -> torch.Tensor:
    """Pearson correlation of ``template`` (h, w) with each image's window at every shift up to ``search``.

    ``images`` are (n, h + 2 search, w + 2 search); returns (n, 2 search + 1, 2 search + 1).
    """
    h, w = template.shape
    t = unit(template[None]).view(1, 1, h, w)
    x = images[:, None]
    count = h * w
    sums = F.avg_pool2d(x, (h, w), stride=1) * count
    squares = F.avg_pool2d(x * x, (h, w), stride=1) * count
    spread = (squares - sums * sums / count).clamp_min(1e-12).sqrt()
    return (F.conv2d(x, t) / spread)[:, 0]


def parabola_peak(left: torch.Tensor, centre: torch.Tensor, right: torch.Tensor, limit: float = 0.5) -> torch.Tensor:
    """Offset from the centre sample of the vertex of the parabola through three neighbouring values,
    clamped to [-limit, limit]; 0 where they do not curve downwards."""
    curvature = left - 2 * centre + right
    offset = torch.where(curvature < 0, 0.5 * (left - right) / curvature.clamp(max=-1e-12), torch.zeros_like(centre))
    return offset.clamp(-limit, limit)


def sample(images: torch.Tensor, size: int, scale: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """A ``size`` x ``size`` window centred on each (n, L, L) image, magnified by ``scale`` and moved by (dy, dx) pixels.

    Window pixel p (coordinates from the image centre) is read at ``scale * p + (dy, dx)``,
    bilinearly, edges replicated: a copy magnified by s and moved by t is read back onto
    its original's grid with scale = s and (dy, dx) = t.
    """
    n, side = len(images), images.shape[-1]
    steps = torch.arange(size, dtype=images.dtype, device=images.device) - (size - 1) / 2
    along = scale.view(n, 1) * steps  # (n, size) offsets from the centre, in pixels
    ys = (along + dy.view(n, 1)) * (2 / side)
    xs = (along + dx.view(n, 1)) * (2 / side)
    grid = torch.stack(torch.broadcast_tensors(xs[:, None, :], ys[:, :, None]), dim=-1)
    return F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="border", align_corners=False)[:, 0]


def align(images: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """Each 32 px image's central window, read where the image best matches ``template`` (sub-pixel)."""
    search, margin = ALIGN_SEARCH, ALIGN_MARGIN
    core = COARSE - 2 * margin
    windows = images[:, margin - search: COARSE - margin + search, margin - search: COARSE - margin + search]
    corr = window_correlation(windows, template[margin:COARSE - margin, margin:COARSE - margin], search)
    best = corr.flatten(1).argmax(1)
    side = 2 * search + 1
    iy = (best // side).clamp(1, side - 2)
    ix = (best % side).clamp(1, side - 2)
    rows = torch.arange(len(images), device=images.device)
    centre = corr[rows, iy, ix]
    dy = iy - search + parabola_peak(corr[rows, iy - 1, ix], centre, corr[rows, iy + 1, ix])
    dx = ix - search + parabola_peak(corr[rows, iy, ix - 1], centre, corr[rows, iy, ix + 1])
    return sample(images, core, torch.ones_like(dy, dtype=images.dtype), dy.to(images.dtype), dx.to(images.dtype))


@dataclass
class Embeddings:
    """The two stage-1 embeddings of a set of images (rows zero-mean, unit-norm)."""

    plain: torch.Tensor  # (n, 1024)
    aligned: torch.Tensor  # (n, 576)


def embed(images32: torch.Tensor, template: torch.Tensor, chunk: int = 4096) -> Embeddings:
    """Both embeddings of (n, 32, 32) coarse images; ``template`` is the reference set's mean coarse image."""
    aligned = torch.cat([unit(align(images32[s:s + chunk], template)) for s in range(0, len(images32), chunk)]) \
        if len(images32) else images32.new_zeros((0, (COARSE - 2 * ALIGN_MARGIN) ** 2))
    return Embeddings(plain=unit(images32), aligned=aligned)


def top_k(queries: torch.Tensor, references: torch.Tensor, k: int, chunk: int = 4096,
          exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest dot products of each query row with the reference rows: (values, indices), (n, k).

    Blocks of at most ``chunk x chunk`` products are merged into a running top k.
    ``exclude_self`` (queries are the references) skips each row's own index.
    """
    if exclude_self and len(queries) != len(references):
        raise ValueError("exclude_self needs queries and references to be the same set")
    k = min(k, len(references) - int(exclude_self))
    if k < 1:
        raise ValueError("not enough references to search")
    values, indices = [], []
    for i0 in range(0, len(queries), chunk):
        q = queries[i0:i0 + chunk]
        best_v = torch.full((len(q), 0), -math.inf, device=q.device)
        best_i = torch.zeros((len(q), 0), dtype=torch.long, device=q.device)
        for j0 in range(0, len(references), chunk):
            block = q @ references[j0:j0 + chunk].T
            if exclude_self and j0 < i0 + len(q) and i0 < j0 + block.shape[1]:
                rows = torch.arange(len(q), device=q.device)
                own = (rows + i0 >= j0) & (rows + i0 < j0 + block.shape[1])
                block[rows[own], rows[own] + i0 - j0] = -math.inf
            v, i = torch.topk(block, min(k, block.shape[1]), dim=1)
            v, pos = torch.topk(torch.cat([best_v, v], 1), min(k, best_v.shape[1] + v.shape[1]), dim=1)
            best_i = torch.cat([best_i, i + j0], 1).gather(1, pos)
            best_v = v
        values.append(best_v)
        indices.append(best_i)
    return torch.cat(values), torch.cat(indices)


def candidates(query: Embeddings, reference: Embeddings, k: int, chunk: int = 4096,
               exclude_self: bool = False) -> torch.Tensor:
    """Each query's top ``k`` references in either embedding: (n, 2k) indices (repeats possible)."""
    _, plain = top_k(query.plain, reference.plain, k, chunk, exclude_self)
    _, aligned = top_k(query.aligned, reference.aligned, k, chunk, exclude_self)
    return torch.cat([plain, aligned], 1)
