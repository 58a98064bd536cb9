"""Time and peak memory of the gate's nearest-neighbour searches as the sets grow.

Why: the distribution and privacy checks compare every synthetic image with every
real one. ``synthgate.measures.distances`` does it in blocks of batched matrix products
so that 100k x 100k fits on one GPU and demo sizes run on CPU; this measures
whether that holds, and how the time grows:

- ``knn`` (k=5, cosine and euclidean) on n x 1024 features against another n;
- the distance blocks alone (``pairwise_sq_dists_chunked``) in float64, knn's CPU
  default, and float32, to show what the precision costs;
- ``shift_tolerant_similarity`` (64 x 64 images, max_shift 4), the privacy check's
  pixel-space search: (2*4+1)^2 = 81 shifted matrix products per block.

CPU times are extrapolated to 100k x 100k assuming time grows as n * m (an
extrapolation, not a measurement); measure on a GPU with ``--device cuda``.

    .venv/bin/python bench/neighbours.py                            # CPU defaults
    .venv/bin/python bench/neighbours.py --device cuda --sizes 10000,100000 --shift-sizes 5000,20000
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import add_run_options, log, peak_memory, public, start_run, timed

from synthgate.measures.distances import knn, pairwise_sq_dists_chunked, shift_tolerant_similarity

TARGET = 100_000


def measure(fn, device: torch.device, repeats: int) -> dict:
    """Peak memory on a first (untimed) call, then ``repeats`` timed calls."""
    with peak_memory(device) as memory:
        fn()
    timing = public(timed(fn, repeats=repeats, warmup=0, device=device))
    return {**timing, "peak_mib": round(memory["peak_mib"], 1)}


def scaled(entry: dict, n: int, m: int, flops_per_pair: float) -> dict:
    """Throughput of one measurement and its n*m extrapolation to 100k x 100k."""
    pairs = n * m
    entry["pairs_per_s"] = pairs / entry["median_s"]
    entry["gflop_per_s"] = round(flops_per_pair * pairs / entry["min_s"] / 1e9, 1)
    entry["extrapolated_100k_x_100k_s"] = round(entry["median_s"] * TARGET * TARGET / pairs)
    entry["extrapolated_100k_x_100k_cpu_s"] = round(entry["cpu_s"] * TARGET * TARGET / pairs)
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,2000,5000", help="knn: n queries against n references")
    parser.add_argument("--shift-sizes", default="250,500,1000", help="shift_tolerant_similarity: n against n")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--max-shift", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    add_run_options(parser, "neighbours")
    args = parser.parse_args()
    device, run = start_run(args, "neighbours")
    rng = np.random.default_rng(0)
    results = {"knn": {}, "distance_blocks": {}, "shift_tolerant_similarity": {}}

    for n in [int(s) for s in args.sizes.split(",") if s]:
        query = rng.standard_normal((n, args.dim), dtype=np.float32)
        reference = rng.standard_normal((n, args.dim), dtype=np.float32)
        for metric in ("cosine", "euclidean"):
            log(f"knn {metric} {n} x {n}")
            entry = measure(lambda: knn(query, reference, args.k, device=device, metric=metric), device, args.repeats)
            results["knn"][f"{metric}-{n}"] = scaled(entry, n, n, 2 * args.dim)
        for dtype in (torch.float64, torch.float32):
            log(f"distance blocks {dtype} {n} x {n}")

            def blocks():
                for _ in pairwise_sq_dists_chunked(query, reference, device=device, dtype=dtype):
                    pass

            entry = measure(blocks, device, args.repeats)
            results["distance_blocks"][f"{str(dtype).split('.')[1]}-{n}"] = scaled(entry, n, n, 2 * args.dim)
        del query, reference

    side = args.image_size
    shifts = (2 * args.max_shift + 1) ** 2
    crop = (side - 2 * args.max_shift) ** 2
    for n in [int(s) for s in args.shift_sizes.split(",") if s]:
        queries = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
        references = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
        log(f"shift_tolerant_similarity {n} x {n}")
        entry = measure(lambda: shift_tolerant_similarity(queries, references, args.max_shift, device=device),
                        device, args.repeats)
        results["shift_tolerant_similarity"][str(n)] = scaled(entry, n, n, 2 * shifts * crop)

    notes = [
        "extrapolated_100k_x_100k_s = median_s * (100000^2 / (n*m)) (and _cpu_s from cpu_s): an extrapolation "
        "from the measured size, assuming time grows with the number of pairs; not a measurement. Use the "
        "largest size: small sizes carry fixed overheads.",
        f"knn: k={args.k}, random float32 features of dimension {args.dim}, query and reference of equal size; "
        "on CPU knn computes in float64 (synthgate.measures.distances._device_dtype), on CUDA in float32.",
        "distance_blocks: only iterating pairwise_sq_dists_chunked (default chunk 4096), no top-k.",
        f"shift_tolerant_similarity: random uint8 {side}x{side} images, max_shift {args.max_shift} "
        f"({shifts} shifts of a {side - 2 * args.max_shift}^2 crop), float32.",
        "gflop_per_s counts the matrix products only (2*d per pair, times the shifts), at the best run.",
        "peak_mib: " + ("torch.cuda.max_memory_allocated above the start" if device.type == "cuda"
                        else "process RSS above the start, sampled every 2 ms, on the first call"),
    ]
    parameters = {k: getattr(args, k) for k in ("sizes", "shift_sizes", "dim", "k", "image_size", "max_shift",
                                                 "repeats", "device")}
    run.save(args.out, parameters, results, notes)


if __name__ == "__main__":
    main()
