"""Images/s of the full feature-extraction pipeline next to a bare forward pass.

Why: the gate's cost on a new release is dominated by running every image through
DenseNet121 once (``synthgate.models.embedding.run_model``: decode PNG -> xrv range -> batches
-> features + scores). Comparing it with ``forward_features`` alone on pre-decoded,
pre-batched tensors (same model, batch size, device, precision) shows how much of
the time is decoding and data movement rather than the network. fp32 and bf16
(channels_last + autocast) are both measured, and the bf16-vs-fp32 differences of
scores and features on the same images are reported: that measured tolerance is
what justifies bf16 as the GPU default in ``synthgate.models.embedding.default_precision``.

    .venv/bin/python bench/extraction.py                      # CPU defaults (~2-3 min on 2 cores)
    .venv/bin/python bench/extraction.py --device cuda --images 4096,2048 --batch-size 128
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import add_run_options, log, public, rate, start_run, timed
from PIL import Image

import synthgate.models.embedding
from synthgate.data.imaging import load_xrv
from synthgate.demo.phantoms import render
from synthgate.models.embedding import forward_features, run_model
from synthgate.models.loading import build_densenet, load_checkpoint


def write_phantoms(folder: Path, count: int, size: int) -> list[Path]:
    """``count`` phantom CXRs rendered at ``size`` px and saved as 8-bit PNGs (what a release holds)."""
    paths = []
    for seed in range(count):
        path = folder / f"{size}px-{seed:05d}.png"
        Image.fromarray(render(seed, size=size)).save(path)
        paths.append(path)
    return paths


def prepared(model: torch.nn.Module, device: torch.device, precision: str) -> torch.nn.Module:
    """A copy of ``model`` set up as ``run_model`` sets it up (run_model converts its argument in place)."""
    model = copy.deepcopy(model).to(device).eval()
    return model.to(memory_format=torch.channels_last) if precision == "bf16" else model


def bare_forward(model, batches: list[torch.Tensor], device: torch.device, precision: str):
    """``forward_features`` over pre-made device batches: the network alone."""

    @torch.inference_mode()
    def run():
        for batch in batches:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                forward_features(model, batch)

    return run


def workers_used(count: int, device: torch.device) -> bool:
    """Whether ``run_model`` decodes in DataLoader worker processes (its rule: GPU and a large set)."""
    return device.type == "cuda" and count >= synthgate.models.embedding.MIN_IMAGES_FOR_WORKERS


def in_process(fn):
    """Call ``fn`` with ``run_model``'s worker processes switched off (to measure what they cost or save)."""
    saved = synthgate.models.embedding.MIN_IMAGES_FOR_WORKERS
    synthgate.models.embedding.MIN_IMAGES_FOR_WORKERS = float("inf")
    try:
        return fn()
    finally:
        synthgate.models.embedding.MIN_IMAGES_FOR_WORKERS = saved


def tolerance(fp32, bf16) -> dict:
    """How far bf16 outputs are from fp32 ones on the same images."""
    delta = np.abs(bf16.scores - fp32.scores)
    a, b = fp32.features.astype(np.float64), bf16.features.astype(np.float64)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {
        "max_abs_score_diff": float(delta.max()),
        "mean_abs_score_diff": float(delta.mean()),
        "p99_abs_score_diff": float(np.quantile(delta, 0.99)),
        "max_rel_score_diff": float((delta / np.maximum(np.abs(fp32.scores), 1e-12)).max()),
        "feature_cosine_min": float(cosine.min()),
        "feature_cosine_mean": float(cosine.mean()),
        "max_rel_feature_diff": float(np.abs(b - a).max() / np.abs(a).max()),
        "fp32_score_range": [float(fp32.scores.min()), float(fp32.scores.max())],
        "images": int(len(delta)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="64,224", help="image sizes in px (default 64,224)")
    parser.add_argument("--images", default="512,128", help="images per size (default 512,128)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median and min)")
    add_run_options(parser, "extraction")
    parser.add_argument("--checkpoint", type=Path,
                        help="a synthgate checkpoint (trained weights, for a more meaningful bf16 tolerance); "
                             "default: a randomly initialised DenseNet121 with 3 outputs")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(n) for n in args.images.split(",")]
    precisions = args.precisions.split(",")
    if len(counts) != len(sizes):
        parser.error("--images needs one count per --sizes entry")
    device, run = start_run(args, "extraction")
    torch.manual_seed(0)
    base = load_checkpoint(args.checkpoint).module if args.checkpoint else build_densenet(3)

    results = {}
    with tempfile.TemporaryDirectory(prefix="synthgate-bench-") as tmp:
        for size, count in zip(sizes, counts):
            log(f"rendering {count} phantoms at {size} px")
            paths = write_phantoms(Path(tmp), count, size)
            decode = timed(lambda: [load_xrv(p, size) for p in paths], repeats=args.repeats, warmup=0)
            pixels = torch.from_numpy(np.stack(decode["value"]))
            entry = {"images": count, "decode_one_process": {**public(decode), "images_per_s": rate(count, decode)}}
            outputs = {}
            for precision in precisions:
                log(f"{size} px {precision}: pipeline")
                model = prepared(base, device, precision)

                def pipeline():
                    return run_model(model, paths, size, device, precision, args.batch_size)

                pipe = timed(pipeline, repeats=args.repeats, device=device)
                outputs[precision] = pipe["value"]
                log(f"{size} px {precision}: bare forward")
                fmt = torch.channels_last if precision == "bf16" else torch.contiguous_format
                batches = [b.to(device).contiguous(memory_format=fmt) for b in pixels.split(args.batch_size)]
                bare = timed(bare_forward(model, batches, device, precision), repeats=args.repeats, device=device)
                entry[precision] = {
                    "pipeline": {**public(pipe), "images_per_s": rate(count, pipe)},
                    "bare_forward": {**public(bare), "images_per_s": rate(count, bare)},
                    # < 1: the pipeline reaches this fraction of the bare network's throughput
                    "pipeline_over_bare_throughput": round(bare["median_s"] / pipe["median_s"], 3),
                    "decode_workers": workers_used(count, device),
                }
                if precision == "fp32":  # what channels_last alone would give fp32 (synthgate uses it for bf16 only)
                    model_cl = prepared(base, device, "bf16")
                    batches_cl = [b.contiguous(memory_format=torch.channels_last) for b in batches]
                    cl = timed(bare_forward(model_cl, batches_cl, device, precision), repeats=args.repeats,
                               device=device)
                    entry[precision]["bare_forward_channels_last"] = {**public(cl), "images_per_s": rate(count, cl)}
                    del model_cl, batches_cl
                if workers_used(count, device):
                    log(f"{size} px {precision}: pipeline, decoding in-process")
                    single = in_process(lambda: timed(pipeline, repeats=args.repeats, device=device))
                    entry[precision]["pipeline_in_process_decode"] = {**public(single),
                                                                      "images_per_s": rate(count, single)}
                log(f"  pipeline {count / pipe['median_s']:.1f} img/s, bare {count / bare['median_s']:.1f} img/s")
                del batches, model
            if {"fp32", "bf16"} <= outputs.keys():
                entry["bf16_vs_fp32"] = tolerance(outputs["fp32"], outputs["bf16"])
            results[f"{size}px"] = entry

    notes = [
        "pipeline = synthgate.models.embedding.run_model on PNG files (decoded in DataLoader workers on a GPU with >= "
        "MIN_IMAGES_FOR_WORKERS images, else in the main process); bare = synthgate.models.embedding.forward_features on the same images "
        "pre-decoded into device tensors, same batch size and precision.",
        "pipeline_over_bare_throughput = bare median time / pipeline median time.",
        "images_per_s.per_cpu_s: images per CPU second of this process and its reaped DataLoader workers, "
        "the steadier number on a loaded machine.",
        "bare_forward_channels_last (fp32 only): the bare forward with the model and input in channels_last.",
        "pipeline_in_process_decode: the same pipeline with DataLoader workers switched off, measured where "
        "run_model would start them (images >= synthgate.models.embedding.MIN_IMAGES_FOR_WORKERS).",
        "bf16 = channels_last + torch.autocast(bfloat16); bf16_vs_fp32 compares the two pipeline outputs.",
    ]
    if not args.checkpoint:
        notes.append("random weights: speed is representative, the bf16 tolerance is not (a randomly "
                     "initialised DenseNet121 gives logits so large that sigmoid scores saturate at 0 or 1); "
                     "pass --checkpoint for trained weights.")
    if device.type == "cpu":
        notes.append("CPU bf16 kernels differ from GPU ones: re-measure the tolerance with --device cuda.")
    parameters = {"sizes": sizes, "images": counts, "batch_size": args.batch_size, "precisions": precisions,
                  "repeats": args.repeats, "device": str(device),
                  "model": str(args.checkpoint) if args.checkpoint else "build_densenet(3), random init (seed 0)"}
    run.save(args.out, parameters, results, notes)


if __name__ == "__main__":
    main()
