"""The whole gate at delivery scale: time per stage and peak memory as the release grows.

Why: a real delivery is thousands of 512 x 512 images and its generator learned from a
data set several times that size. This builds, per size n, a phantom world at 512 px
(``synthgate.demo``): a labelled release of n images (site A, new patients), the
generator's source images (3n, site A) and a reference data set (site B, train and
test split by patient), then gates it with the built-in default policy at each
resolution (the evaluating DenseNet121 trained at that input size, the pixel checks
at that size), stage by stage on one ``ReleaseEvaluation`` with an empty cache:

- integrity: hash, decode and inspect every release file;
- leakage: file and decoded-pixel hashes, near-duplicates across data sets;
- model: train the reference DenseNet121 (backbone part of the reference train);
- features: extract features of every image set;
- pretrained, prevalence, utility (the retraining grid), distribution, privacy.

Each stage's wall time, CPU time and the process's peak memory (RSS sampled every
2 ms above the level at its start) go to ``bench/results/scale-<device>.json``.
Building the world is timed apart (rendering is the benchmark's cost, not the gate's);
``--worlds DIR --build-only`` renders them ahead (``build_s`` is then null in the record
of the run that gates them), and every gate still starts from an empty cache.

    .venv/bin/python bench/scale.py --threads 1                     # 1k and 3k at 64 and 128 px
    .venv/bin/python bench/scale.py --sizes 10000 --resolutions 128 --device cuda
    .venv/bin/python bench/scale.py --sizes 3000 --worlds DIR --build-only  # render now, gate later
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from _common import add_run_options, cpu_seconds, log, peak_memory, start_run
from PIL import Image

from synthgate.config.release import load_release
from synthgate.demo import phantoms, sites
from synthgate.evaluation.release_evaluation import GateOptions, ReleaseEvaluation
from synthgate.gate import policy as gate_policy

SOURCE_FACTOR = 3  # the generator's source images per release image
PARTS = ("source", "release", "reference/train", "reference/test")
BUILT = "built"  # written into a kept world's folder once every image is on disk
STAGES = ("integrity", "leakage", "model", "features", "pretrained", "prevalence", "utility", "distribution", "privacy")


def _write(job: tuple[Path, str, sites.PhantomSpec, str, int]) -> None:
    path, _, spec, site, size = job
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(phantoms.render_spec(spec, site=site, size=size)).save(path)


def collection(folder: Path, site: str, n_images: int, seed: int, prefix: str, pool: ProcessPoolExecutor,
               with_patients: bool = True) -> None:
    """About ``n_images`` phantoms of ``site`` at 512 px with a manifest (1-3 images per patient)."""
    specs = sites.sample_cohort(site, n_patients=max(1, n_images // 2), images_per_patient=(1, 3), seed=seed,
                                id_prefix=prefix)[:n_images]
    jobs = [(folder / f"images/{spec.patient_id}-{k:06d}.png", prefix, spec, site, 512) for k, spec in enumerate(specs)]
    list(pool.map(_write, jobs, chunksize=32))
    with open(folder / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", *(["patient_id"] if with_patients else []), *sites.FINDINGS])
        for path, _, spec, _, _ in jobs:
            writer.writerow([path.relative_to(folder).as_posix(), *([spec.patient_id] if with_patients else []),
                             *(int(name in spec.findings) for name in sites.FINDINGS)])


def build_world(root: Path, n: int, n_reference: int, workers: int) -> None:
    with ProcessPoolExecutor(max_workers=workers) as pool:
        collection(root / "source", "site-a", SOURCE_FACTOR * n, 1, "src", pool)
        collection(root / "release", "site-a", n, 2, "syn", pool, with_patients=False)
        collection(root / "reference" / "train", "site-b", n_reference * 2 // 3, 3, "ref", pool)
        collection(root / "reference" / "test", "site-b", n_reference // 3, 4, "tst", pool)


@contextlib.contextmanager
def world_folder(worlds: Path | None, n: int):
    """Where the world of ``n`` images lives: kept under ``worlds`` (built once, reused), else a temporary folder."""
    if worlds is None:
        with tempfile.TemporaryDirectory(prefix=f"synthgate-scale-{n}-") as folder:
            yield Path(folder)
    else:
        root = worlds / f"world-{n}"
        root.mkdir(parents=True, exist_ok=True)
        yield root


def release_toml(resolution: int) -> str:
    classes = "".join(f'[classes."{name}"]\nmodel_output = "{output}"\nmin_count = 30\n\n'
                      for name, output in zip(sites.FINDINGS, ("Mass", "Effusion", "Cardiomegaly")))
    return f"""[release]
name = "scale"
description = "Phantom release at delivery scale (bench/scale.py)"
generator = "synthgate phantom generator"
source_datasets = ["phantom-site-a"]
source_images = {{ path = "../source" }}

[images]
width = 512
height = 512
mode = "L"

{classes}[reference.train]
path = "../reference/train"
datasets = ["phantom-site-b"]

[reference.test]
path = "../reference/test"
datasets = ["phantom-site-b"]

[model]
train = "reference"
size = {resolution}
epochs = 12
seed = 0
"""


def policy_toml(resolution: int) -> str:
    """The built-in default policy with the pixel checks at ``resolution``."""
    default = (Path(gate_policy.__file__).parent / "default-policy.toml").read_text()
    return default + f"""
[settings]
memorisation_resolution = {resolution}

[settings.distribution]
resolution = {resolution}
"""


def gate_stages(root: Path, resolution: int, device: torch.device, cache: Path) -> dict:
    (root / "release" / "release.toml").write_text(release_toml(resolution))
    policy_file = root / f"policy-{resolution}.toml"
    policy_file.write_text(policy_toml(resolution))
    release = load_release(root / "release")
    policy = gate_policy.load_policy(policy_file)
    release = gate_policy.apply(policy, release, gate_policy.requirements(policy, release), {})
    evaluation = ReleaseEvaluation(release, GateOptions(cache_dir=cache, device=device.type))

    def features():
        for name in ("synthetic", "reference_train", "reference_test", "source_images"):
            evaluation.embeddings(getattr(evaluation, name))

    steps = {"integrity": lambda: evaluation.integrity, "leakage": lambda: evaluation.leakage,
             "model": lambda: evaluation.model, "features": features,
             **{name: (lambda name=name: getattr(evaluation, name)) for name in STAGES[4:]}}
    stages = {}
    for name in STAGES:
        log(f"  {name}")
        with peak_memory(device) as memory:
            start, start_cpu = time.perf_counter(), cpu_seconds()
            steps[name]()
            stages[name] = {"wall_s": round(time.perf_counter() - start, 2), "cpu_s": round(cpu_seconds() - start_cpu, 2)}
        stages[name]["peak_mib"] = round(memory["peak_mib"], 1)
    total = sum(stage["wall_s"] for stage in stages.values())
    return {"stages": stages, "total_s": round(total, 1),
            "peak_mib": max(stage["peak_mib"] for stage in stages.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,3000", help="release image counts (source: 3x, 512 px)")
    parser.add_argument("--resolutions", default="64,128", help="model input and pixel-check sizes")
    parser.add_argument("--reference", type=int, default=900, help="reference images (2/3 train, 1/3 test)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes rendering the world")
    parser.add_argument("--worlds", type=Path, help="keep the built worlds here and reuse them (default: temporary)")
    parser.add_argument("--build-only", action="store_true", help="build the worlds into --worlds and stop")
    add_run_options(parser, "scale", "cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.build_only and args.worlds is None:
        parser.error("--build-only needs --worlds (where the worlds are kept)")
    device, run = start_run(args, "scale")
    os.environ.setdefault("SYNTHGATE_PROGRESS", "0")  # the stages are logged here
    results = {}
    for n in (int(v) for v in args.sizes.split(",") if v):
        with world_folder(args.worlds, n) as root:
            entry = {"images": None, "build_s": None, "resolutions": {}}
            if not (root / BUILT).exists():
                log(f"building a world of {n} release images at 512 px in {root}")
                start = time.perf_counter()
                build_world(root, n, args.reference, args.workers)
                entry["build_s"] = round(time.perf_counter() - start, 1)
                (root / BUILT).write_text("")
            entry["images"] = {part: sum(1 for _ in (root / part / "images").iterdir()) for part in PARTS}
            if args.build_only:
                continue
            for resolution in (int(v) for v in args.resolutions.split(",") if v):
                log(f"gating {n} images at {resolution} px")
                cache = root / f"cache-{resolution}"
                shutil.rmtree(cache, ignore_errors=True)  # every gate here is a first run
                entry["resolutions"][resolution] = gate_stages(root, resolution, device, cache)
            results[n] = entry
    if args.build_only:
        return
    run.save(args.out, vars(args), results, notes=[
        "Each size and resolution gated once with an empty cache: the first run a delivery meets.",
        f"Release n images, generator source {SOURCE_FACTOR}n, reference {args.reference} (site B), all 512 px.",
    ])


if __name__ == "__main__":
    main()
