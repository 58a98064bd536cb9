"""Time of the two-stage pixel search for copies (``synthgate.measures.similarity``) as the sets grow.

Why: the privacy checks compare every synthetic image with every real one. The
search first takes candidates by nearest-neighbour search in two compact 32 px
embeddings (stage 1: chunked matrix products, O(n * m)), then compares only the
candidate pairs exactly at 128 px (stage 2: O(n * candidates)). This measures both
stages on synthetic phantoms (``synthgate.demo.phantoms.render``, 128 px) and
extrapolates to 10k synthetic x 100k source images, the goal being 10 minutes on
2 CPU cores:

- index: building the reference side (32 px images, both embeddings, mean image),
  O(m), extrapolated per reference image;
- stage 1 (``candidates``): the queries' embeddings and the top-k matrix products,
  extrapolated per query-reference pair (the matrix products dominate: their
  FLOP rate is measured alone on random vectors of the same shapes);
- stage 2 (``comparison``): the 32 px alignment of every candidate and the 128 px
  comparison of the best 3, extrapolated per query.

A share of the synthetic images are planted copies of source images (the six kinds
of ``plant_copy``, in turn), so that recall is measured beside the time.

    .venv/bin/python bench/memorisation.py --threads 1          # CPU, 1k x 3k and 2k x 6k
    .venv/bin/python bench/memorisation.py --device cuda --sizes 10000x100000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import add_run_options, cpu_seconds, log, start_run, sync

from synthgate.demo.phantoms import render
from synthgate.measures.neighbours import top_k
from synthgate.measures.similarity import CANDIDATES, PLANTED_KINDS, REFINE, CopyIndex, plant_copy

TARGET_QUERIES, TARGET_REFERENCES = 10_000, 100_000
EMBEDDING_DIM = 32 * 32 + 24 * 24  # plain + aligned stage-1 embeddings


def phantoms(seeds, size: int) -> np.ndarray:
    return np.stack([render(int(seed), size=size) for seed in seeds]).astype(np.float16) / np.float16(255)


def matmul_rate(n: int, m: int, device: torch.device, k: int) -> float:
    """GFLOP/s of stage 1's top-k matrix products alone, on random unit vectors of the embeddings' sizes."""
    rates = []
    for dim in (32 * 32, 24 * 24):
        q = torch.nn.functional.normalize(torch.randn(n, dim, device=device), dim=1)
        r = torch.nn.functional.normalize(torch.randn(m, dim, device=device), dim=1)
        top_k(q[:64], r[:64], k)  # warm-up
        sync(device)
        start = time.perf_counter()
        top_k(q, r, k)
        sync(device)
        rates.append((2 * n * m * dim, time.perf_counter() - start))
    return sum(f for f, _ in rates) / sum(t for _, t in rates) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000x3000,2000x6000", help="synthetic x source image counts")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--max-shift", type=int, default=4, help="pixels at 64 px")
    parser.add_argument("--k", type=int, default=CANDIDATES, help="stage-1 candidates per embedding")
    parser.add_argument("--refine", type=int, default=REFINE, help="candidates compared at full resolution")
    parser.add_argument("--copies", type=float, default=0.05, help="share of synthetic images that are planted copies")
    parser.add_argument("--threshold", type=float, default=0.95)
    add_run_options(parser, "memorisation", "cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device, run = start_run(args, "memorisation")
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",") if size]
    most_n, most_m = max(n for n, _ in sizes), max(m for _, m in sizes)

    log(f"rendering {most_m} source and {most_n} synthetic phantoms at {args.resolution} px")
    start = time.perf_counter()
    source = phantoms(range(most_m), args.resolution)
    synthetic = phantoms(range(10_000_000, 10_000_000 + most_n), args.resolution)
    render_s = time.perf_counter() - start
    rng = np.random.default_rng(0)

    results = {"render_s": round(render_s, 1), "sizes": {}}
    for n, m in sizes:
        queries = synthetic[:n].copy()
        planted = np.sort(rng.choice(n, size=int(round(args.copies * n)), replace=False))
        sources = rng.choice(m, size=len(planted), replace=False)
        kinds = [PLANTED_KINDS[i % len(PLANTED_KINDS)] for i in range(len(planted))]
        for i, j, kind in zip(planted, sources, kinds):
            queries[i] = plant_copy(source[j].astype(np.float32), kind, rng)
        log(f"{n} x {m}: index")
        wall, cpu = time.perf_counter(), cpu_seconds()
        index = CopyIndex(source[:m], args.max_shift, args.resolution, device)
        sync(device)
        index_s, index_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        log(f"{n} x {m}: search")
        timings: dict = {}
        wall, cpu = time.perf_counter(), cpu_seconds()
        similarity, match = index.search(queries, k=args.k, refine=args.refine, timings=timings)
        search_s, search_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        found = (match[planted] == sources) & (similarity[planted] > args.threshold)
        others = np.delete(similarity, planted)
        log(f"{n} x {m}: matrix products alone")
        gflops = matmul_rate(n, m, device, args.k)
        stage1, stage2 = timings["candidates"], timings["comparison"]
        target = {
            "index_s": index_s / m * TARGET_REFERENCES,
            "stage1_s": stage1 / (n * m) * TARGET_QUERIES * TARGET_REFERENCES,
            "stage1_from_flop_rate_s": 2 * TARGET_QUERIES * TARGET_REFERENCES * EMBEDDING_DIM / (gflops * 1e9),
            "stage2_s": stage2 / n * TARGET_QUERIES,
        }
        target["search_s"] = target["index_s"] + target["stage1_s"] + target["stage2_s"]
        # find_memorised also searches for a held-out half's images (as many as the release has) among the other
        # half, and 300 planted copies among all: one more index of m/2, 10k x 50k stage 1, 10k + 300 stage 2.
        target["find_memorised_s"] = (target["search_s"] + target["index_s"] / 2 + target["stage1_s"] / 2
                                      + target["stage2_s"] * (1 + 300 / TARGET_QUERIES))
        results["sizes"][f"{n}x{m}"] = {
            "index_s": round(index_s, 2), "index_cpu_s": round(index_cpu, 2),
            "stage1_s": round(stage1, 2), "stage2_s": round(stage2, 2),
            "search_s": round(search_s, 2), "search_cpu_s": round(search_cpu, 2),
            "stage1_pairs_per_s": round(n * m / stage1),
            "stage1_effective_gflop_per_s": round(2 * n * m * EMBEDDING_DIM / stage1 / 1e9, 1),
            "matmul_topk_gflop_per_s": round(gflops, 1),
            "stage2_ms_per_query": round(1000 * stage2 / n, 2),
            "planted_copies": len(planted), "planted_found": int(found.sum()),
            "planted_min_similarity": round(float(similarity[planted].min()), 4) if len(planted) else None,
            "others_max_similarity": round(float(others.max()), 4),
            "extrapolated_10k_x_100k": {key: round(value, 1) for key, value in target.items()},
        }
        log(results["sizes"][f"{n}x{m}"])
        del index

    notes = [
        "extrapolated_10k_x_100k: index_s * 100k / m (one pass over the references), stage1_s * 10k * 100k / (n * m) "
        "(matrix products over every pair), stage2_s * 10k / n (a fixed number of candidates per query); "
        "stage1_from_flop_rate_s: the products alone at matmul_topk_gflop_per_s, 2 * (1024 + 576) FLOPs per pair. "
        "An extrapolation from the measured sizes, not a measurement: use the largest size.",
        "find_memorised_s adds the held-out baseline (index of half the references, as many held-out queries as "
        "synthetic images against that half) and the 300 planted copies of planted_recall; the feature-space "
        "neighbour search (model features, synthgate.measures.distances.knn) and image decoding are not included.",
        f"phantoms: synthgate.demo.phantoms.render at {args.resolution} px, site-a, stored as float16 like "
        "ReleaseEvaluation.pixels; planted copies: the six kinds of synthgate.measures.similarity.plant_copy in turn.",
        "stage1_effective_gflop_per_s counts only the matrix products' FLOPs over the whole of stage 1 "
        "(embedding the queries and top-k included).",
    ]
    parameters = {k: getattr(args, k) for k in ("sizes", "resolution", "max_shift", "k", "refine", "copies",
                                                 "threshold", "device", "threads")}
    run.save(args.out, parameters, results, notes)


if __name__ == "__main__":
    main()
