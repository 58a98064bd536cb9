"""A study on real data: split a labelled data set by patient, derive releases from it, gate them.

``fixtures/kermany/study.toml`` names a real data set (any format of
docs/adapters.md; here Kermany's class folders), how to split it by patient,
the release.toml every derived release shares, and the releases: a perfect
stand-in generator (real images the generator's source never contained) that
must be cleared, and defects that must be blocked, each with its ``[expect]``.

    python -m synthgate.study --size 64 --cache DIR          # build; print the release folders
    python -m synthgate.study --size 128 --run               # and gate each one: reports/kermany/128px/

Patients are split into four parts: the generator's training images (``source``,
what ``[release.source_images]`` points at), images the generator "made"
(``held_back``: the stand-in's pool, never in ``source``), and the reference
train and test splits (what the evaluating model learns from and is scored on).
Patients linked by byte-identical files are kept together; within a part, only
the first of byte-identical files is written and the rest are counted.
Everything is built into the cache (never into git) by the demo's machinery:
``demo.Item`` / ``demo.write_collection`` / ``demo.dump_toml``, staging then
rename (``demo.build_once``), and the demo's defect helpers.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from synthgate.data import loading
from synthgate.demo import world as demo
from synthgate.data import imaging
from synthgate.config.toml import ConfigError, Table, read_toml
from synthgate.data.collection import Collection
from synthgate.config.release import CONFIG_NAME, DataRef

PACKAGE_DIR = Path(__file__).resolve().parent
REPO = PACKAGE_DIR.parent
PARTS = ("source", "held_back", "reference_train", "reference_test")
FOLDERS = {"source": "source", "reference_train": "reference/train", "reference_test": "reference/test"}
# Release keys the builder writes (from the study's names, parts and size); the template must leave them out.
BUILDER_KEYS = {"release": ("name", "description", "source_datasets", "source_images"), "images": None, "reference": None}
# Defect parameters that are lengths in pixels: given at 64 px, scaled to the study size.
PIXEL_LENGTHS = ("blur", "shift")
MEASUREMENTS_ENV = "SYNTHGATE_STUDY_MEASUREMENTS"
# MedMNIST v2 (Yang et al. 2023, Table 3), PneumoniaMNIST, official test split (234 normal / 390 pneumonia).
PUBLISHED = (("MedMNIST v2 ResNet-18 (28 px)", 0.944, 0.854), ("MedMNIST v2 ResNet-18 (224 px)", 0.956, 0.864),
             ("MedMNIST v2 ResNet-50 (224 px)", 0.962, 0.884))


def study_file() -> Path:
    return demo.fixtures_dir() / "kermany" / "study.toml"


# --------------------------------------------------------------------------- the study file


@dataclass(frozen=True)
class Study:
    file: Path
    name: str
    seed: int
    size: int
    patients: float  # fraction of the patient groups used (the CI profile uses fewer)
    gate_args: tuple[str, ...]  # extra arguments for each gate run (a profile's choice)
    data: DataRef
    fractions: dict[str, float]  # part -> fraction of the patient groups
    source_dataset: str
    reference_dataset: str
    template: dict  # what every release.toml holds besides the builder's keys
    releases: dict[str, dict]  # name -> {"description", "defect" (or None), "expect"}

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.template["classes"])


def load_study(file: Path | None = None, size: int | None = None, patients: float | None = None,
               profile: str | None = None, data: Path | None = None) -> Study:
    """Read and check the study file; ``profile`` (e.g. ``"ci"``) takes size and patients from that table."""
    file = Path(file or study_file()).resolve()
    top = Table(read_toml(file), file)
    name, seed = top.get("name", str), top.get("seed", int)
    chosen = {"size": top.get("size", int), "patients": top.get("patients", float, 1.0), "gate_args": []}
    profiles = top.table("profiles", {})
    for profile_name in list(profiles.data):
        table = profiles.table(profile_name)
        values = {"size": table.get("size", int, chosen["size"]), "patients": table.get("patients", float, chosen["patients"]),
                  "gate_args": table.get_list("gate_args", str, [])}
        table.finish()
        if profile_name == profile:
            chosen.update(values)
    if profile is not None and profile not in profiles.data:
        raise profiles.error(profile, f"no such profile (found: {', '.join(profiles.data) or 'none'})")
    size, patients = size or chosen["size"], patients or chosen["patients"]
    if size < 16 or not 0 < patients <= 1:
        raise top.error("size" if size < 16 else "patients", f"size >= 16 and 0 < patients <= 1, got {size}, {patients}")

    data_ref = _data_ref(top.table("data"), file.parent, data)
    split = top.table("split")
    fractions = {part: split.get(part, float) for part in PARTS}
    split.finish()
    if any(f <= 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1) > 1e-9:
        raise split.error("", f"fractions of {', '.join(PARTS)} must be positive and sum to 1, got {fractions}")
    names = top.table("datasets")
    source_dataset, reference_dataset = names.get("source", str), names.get("reference", str)
    names.finish()
    if source_dataset == reference_dataset:
        raise names.error("reference", "name the reference data differently from the generator's source (leakage rules)")

    template = top.get("release", dict)
    for section, keys in BUILDER_KEYS.items():
        present = template.get(section, {}) if keys else ({section: 1} if section in template else {})
        for key in keys or [section]:
            if key in present:
                raise top.error(f"release.{section}" + (f".{key}" if keys else ""), "written by the study builder: leave it out")
    if "classes" not in template or "model" not in template:
        raise top.error("release", "the release template needs [release.classes] and [release.model]")
    data_classes = tuple(data_ref.options.get("classes", {}))
    if tuple(template["classes"]) != data_classes:
        raise top.error("release.classes", f"must be the data's classes {list(data_classes)}")

    releases = {}
    table = top.table("releases")
    for release_name in list(table.data):
        entry = table.table(release_name)
        defect = entry.get("defect", dict, None)
        if defect is not None and defect.get("kind") not in DEFECTS:
            raise entry.error("defect.kind", f"{defect.get('kind')!r} is not one of {sorted(DEFECTS)}")
        expect = _expect(entry)
        per_profile = entry.table("profiles", {})  # where a check's outcome depends on the scale
        for profile_name in list(per_profile.data):
            if profile_name not in profiles.data:
                raise per_profile.error(profile_name, f"no such profile (found: {', '.join(profiles.data) or 'none'})")
            own = per_profile.table(profile_name)
            if profile_name == profile:
                expect = _expect(own)
            _expect(own)
            own.finish()
        releases[release_name] = {"description": entry.get("description", str), "defect": defect, "expect": expect}
        entry.finish()
    table.finish()
    top.finish()
    return Study(file, name, seed, size, patients, tuple(chosen["gate_args"]), data_ref, fractions, source_dataset,
                 reference_dataset, template, releases)


def _expect(table: Table) -> dict:
    expect = table.get("expect", dict)
    if not isinstance(expect.get("cleared"), bool) or not expect["cleared"] and not expect.get("blocked_by"):
        raise table.error("expect", "say cleared = true, or cleared = false with blocked_by = [checks]")
    return expect


def _data_ref(table: Table, base: Path, override: Path | None) -> DataRef:
    """The ``[data]`` table: a real data set in any synthgate format (``path``, ``format``, ``datasets``, options)."""
    path = Path(override).resolve() if override else table.path("path", base)
    options = {k: v for k, v in table.data.items() if k not in ("path", "format", "datasets")}
    ref = DataRef(path=path, format=table.get("format", str, "manifest"), datasets=tuple(table.get_list("datasets", str)),
                  options=options, config_file=table.file, config_key=table.prefix)
    if not path.exists():
        raise table.error("path", f"{path} does not exist")
    return ref


# --------------------------------------------------------------------------- splitting by patient


def linked_groups(collection: Collection) -> list[str]:
    """Each image's group: its patient, merged with every patient it shares a byte-identical file with."""
    parent = {g: g for g in collection.groups}

    def root(g: str) -> str:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    first_owner: dict[str, str] = {}
    for digest, group in zip(collection.digests, collection.groups):
        other = first_owner.setdefault(digest, group)
        parent[root(group)] = root(other)
    return [root(g) for g in collection.groups]


def split_by_patient(collection: Collection, fractions: dict[str, float], seed: int,
                     keep: float = 1.0) -> tuple[dict[str, np.ndarray], dict]:
    """Image indices per part, no patient group in two parts; stratified by the groups' label patterns.

    ``keep`` < 1 first draws that fraction of the groups (stratified too). Within a part
    only the first of byte-identical files is kept; the dropped copies are counted.
    """
    groups = np.asarray(linked_groups(collection))
    names, inverse = np.unique(groups, return_inverse=True)
    pattern = np.zeros((len(names), collection.labels.shape[1]), dtype=np.int64)
    np.maximum.at(pattern, inverse, collection.labels)  # a group is positive for a class if any image is
    rng = np.random.default_rng(seed)
    part_of_group = np.full(len(names), -1)
    bounds = np.cumsum([fractions[p] for p in PARTS])
    for stratum in np.unique(pattern, axis=0):
        members = np.flatnonzero((pattern == stratum).all(axis=1))
        members = rng.permutation(members)[: round(keep * len(members))]
        cuts = np.round(bounds * len(members)).astype(int)
        part_of_group[members] = np.searchsorted(cuts, np.arange(len(members)), side="right")
    parts, seen, dropped = {}, set(), {}
    for k, part in enumerate(PARTS):
        chosen = []
        for i in sorted(np.flatnonzero(part_of_group[inverse] == k), key=lambda i: str(collection.paths[i])):
            if collection.digests[i] in seen:
                dropped[part] = dropped.get(part, 0) + 1
                continue
            seen.add(collection.digests[i])
            chosen.append(i)
        parts[part] = np.asarray(chosen, dtype=int)
    report = {
        "images_in_data": len(collection),
        "patient_groups_in_data": int(len(names)),
        "patients_linked_by_identical_files": int(len(set(collection.groups)) - len(names)),
        "identical_copies_dropped": dropped,
        "parts": {part: _part_facts(collection, index) for part, index in parts.items()},
    }
    return parts, report


def _part_facts(collection: Collection, index: np.ndarray) -> dict:
    return {
        "patients": len({collection.groups[i] for i in index}),
        "images": int(len(index)),
        "positives": {c: int(collection.labels[index, k].sum()) for k, c in enumerate(collection.classes)},
    }


# --------------------------------------------------------------------------- images and releases


def grey8(path: Path, size: int) -> np.ndarray:
    """A real image as 8-bit grey at ``size`` x ``size`` (decoded by synthgate.data.imaging: 16-bit rescaled, RGB must be grey)."""
    grey, max_value = imaging.to_grey_array(imaging.open_image(path))
    if max_value != 255:
        grey = np.round(grey.astype(np.float64) / max_value * 255).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(grey))
    if grey.shape != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)  # antialiased when shrinking
    return np.asarray(image)


def flip_labels(items: list[demo.Item], rng: np.random.Generator, params: dict, world: Path) -> None:
    """A ``fraction`` of the images get every label flipped: a generator that ignores its condition that often."""
    count = round(params.get("fraction", 0.3) * len(items))
    for k in rng.choice(len(items), size=count, replace=False):
        items[k].labels = {name: 1 - value for name, value in items[k].labels.items()}


# The demo's defect helpers work on any images: they read the generator's source at ``<world>/source``.
DEFECTS = {
    "label-noise": flip_labels,
    "near-copies": demo.ITEM_DEFECTS["near-copies"],
    "degraded": demo.ITEM_DEFECTS["degraded"],
    "mode-collapse": demo.ITEM_DEFECTS["mode-collapse"],
    "shuffled-labels": demo.ITEM_DEFECTS["shuffled-labels"],
}


def _scaled(defect: dict, size: int) -> dict:
    scaled = dict(defect)
    for key in PIXEL_LENGTHS:
        if key in scaled:
            value = scaled[key] * size / 64
            scaled[key] = max(1, round(value)) if isinstance(defect[key], int) else value
    return scaled


def release_config(study: Study, name: str) -> dict:
    """The release.toml of one derived release: the template plus what the builder knows."""
    entry = study.releases[name]
    return demo._merge(study.template, {
        "release": {"name": name, "description": entry["description"], "source_datasets": [study.source_dataset],
                    "source_images": {"path": "../../source", "datasets": [study.source_dataset]}},
        "images": {"width": study.size, "height": study.size, "mode": "L"},
        "reference": {"train": {"path": "../../reference/train", "datasets": [study.reference_dataset]},
                      "test": {"path": "../../reference/test", "datasets": [study.reference_dataset]}},
        "model": {"size": study.size},
    })


def _fingerprint(study: Study, collection: Collection) -> str:
    digest = hashlib.sha256()
    digest.update(study.file.read_bytes())
    digest.update(json.dumps([study.size, study.patients, str(study.data.path)]).encode())
    for path, sha, labels in zip(collection.paths, collection.digests, collection.labels.tolist()):
        digest.update(f"{Path(path).relative_to(study.data.path).as_posix()}\t{sha}\t{labels}\n".encode())
    for module in ("study.py", "demo.py", "imaging.py"):
        digest.update((PACKAGE_DIR / module).read_bytes())
    return digest.hexdigest()[:16]


def build_study(cache_dir: Path, study: Study | None = None) -> Path:
    """Build (once) the study's splits and releases into ``<cache>/studies/<name>/``; return that folder."""
    study = study or load_study()
    collection = loading.load(study.data, study.name, study.classes)
    fingerprint = _fingerprint(study, collection)
    label = f"{study.size}px-{round(study.patients * 100)}pct-{fingerprint}"
    target = Path(cache_dir) / "studies" / study.name / label
    return build_once(target, lambda staging: _build_into(staging, study, collection), fingerprint)


def _build_into(root: Path, study: Study, collection: Collection) -> None:
    parts, report = split_by_patient(collection, study.fractions, study.seed, study.patients)
    pixels = {i: grey8(collection.paths[i], study.size) for index in parts.values() for i in index}

    def real_item(i: int) -> demo.Item:
        labels = {c: int(collection.labels[i, k]) for k, c in enumerate(collection.classes)}
        return demo.Item(f"images/{Path(collection.paths[i]).stem}.png", pixels[i], labels, collection.groups[i], i)

    for part, folder in FOLDERS.items():
        demo.write_collection(root / folder, [real_item(i) for i in parts[part]])
    held_back = parts["held_back"]
    for index, (name, entry) in enumerate(study.releases.items()):
        rng = np.random.default_rng([study.seed, 100 + index])
        order = rng.permutation(held_back)
        items = [demo.Item(f"images/{k:05d}.png", pixels[i].copy(), real_item(i).labels, f"sample-{k}", k)
                 for k, i in enumerate(order)]
        if entry["defect"]:
            DEFECTS[entry["defect"]["kind"]](items, rng, _scaled(entry["defect"], study.size), root)
        target = root / "releases" / name
        demo.write_collection(target, items, with_patients=False)
        (target / CONFIG_NAME).write_text(
            f"# Built by synthgate.study from {study.file.name} ({study.name}); do not edit.\n"
            + demo.dump_toml(release_config(study, name))
        )
    facts = {"study": study.name, "size": study.size, "patients": study.patients, "seed": study.seed,
             "data": str(study.data.path), "fractions": study.fractions, **report,
             "releases": {name: {"images": int(len(held_back)), "defect": entry["defect"], "expect": entry["expect"]}
                          for name, entry in study.releases.items()}}
    (root / "study.json").write_text(json.dumps(facts, indent=2) + "\n")


def release_folders(root: Path) -> dict[str, Path]:
    return {p.parent.name: p.parent for p in sorted((root / "releases").glob(f"*/{CONFIG_NAME}"))}


# --------------------------------------------------------------------------- running the gate


def pytest_sessionfinish(session) -> None:
    """With ``-p synthgate.study``: record the distribution and privacy numbers the gate computed.

    The gate summary carries the one number each check judges; the study also keeps
    the per-class distances, PRDC and the real-vs-real baselines behind them. Reads
    what the session already computed; computes nothing.
    """
    target = os.environ.get(MEASUREMENTS_ENV)
    if not target:
        return
    from synthgate.plugin import evaluation_key
    from synthgate.reporting.report import plain

    evaluation = session.config.stash.get(evaluation_key, None)
    computed = evaluation.__dict__ if evaluation is not None else {}
    out = {}
    if "distribution" in computed:
        d = computed["distribution"]
        out["distribution"] = {
            "limits": dataclasses.asdict(evaluation.release.distribution), "target": d.target, "n_synthetic": d.n_synthetic, "n_real": d.n_real,
            "frechet": {k: {"synthetic": c.synthetic, "baseline": c.baseline, "ratio": c.ratio} for k, c in d.frechet.items()},
            "detectability": [d.detectability.value, d.detectability.low, d.detectability.high],
            "baseline_detectability": [d.baseline_detectability.value, d.baseline_detectability.low, d.baseline_detectability.high],
            "duplicate_fraction": {"synthetic": d.duplicate_fraction.synthetic, "baseline": d.duplicate_fraction.baseline},
            "prdc": {k: {"synthetic": c.synthetic, "baseline": c.baseline} for k, c in d.prdc.items()},
        }
    if "privacy" in computed:
        p = computed["privacy"]
        out["privacy"] = {
            "threshold": p.threshold, "baseline": p.baseline,
            "max_similarity": {name: float(sim.max()) for name, (sim, _) in p.matches.items()},
            "flagged": {name: int((sim > p.threshold).sum()) for name, (sim, _) in p.matches.items()},
            "feature_neighbours": {name: dataclasses.asdict(c) for name, c in p.feature_neighbours.items()},
        }
    if "model" in computed:
        out["model_card"] = {"model_id": computed["model"].model_id,
                             "validation_metrics": computed["model"].card.validation_metrics}
    Path(target).write_text(json.dumps(plain(out), indent=2) + "\n")


def gate(release: Path, reports: Path, cache_dir: Path, extra: list[str] = ()) -> dict:
    """Gate one release as CI would (``python -m pytest quality_checks``) and read back what it wrote."""
    name = release.name
    summary, measurements = reports / f"{name}.json", reports / f"{name}.measurements.json"
    command = [sys.executable, "-m", "pytest", "quality_checks", f"--release={release}", f"--gate-summary={summary}",
               f"--html={reports / name}.html", "--self-contained-html", f"--synthgate-cache={cache_dir}",
               "-q", "--durations=6", "-p", "no:cacheprovider", "-p", "synthgate.study", *extra]
    env = {**os.environ, MEASUREMENTS_ENV: str(measurements)}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    (reports / f"{name}.log").write_text(done.stdout + done.stderr)
    if not summary.exists():
        raise RuntimeError(f"the gate wrote no summary for {release} (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return {"name": name, "returncode": done.returncode, "seconds": seconds, "summary": json.loads(summary.read_text()),
            "measurements": json.loads(measurements.read_text()) if measurements.exists() else {}}


def failed_checks(summary: dict) -> list[str]:
    """Names of failed criteria without module or parameters (``test_x[a]`` -> ``test_x``)."""
    return sorted({c["id"].split("::")[-1].split("[")[0] for c in summary["criteria"] if c["outcome"] in ("failed", "error")})


def train_reference(release: Path, cache_dir: Path) -> dict:
    """Train (or load from the cache) the reference model exactly as the gate would, and time it."""
    from synthgate.config.release import load_release
    from synthgate.evaluation.release_evaluation import GateOptions, ReleaseEvaluation

    evaluation = ReleaseEvaluation(load_release(release), GateOptions(cache_dir=Path(cache_dir)))
    models = Path(cache_dir) / "models"
    before = set(models.glob("*/densenet121.pt")) if models.is_dir() else set()
    start = time.perf_counter()
    model = evaluation.model
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "from_cache": set(models.glob("*/densenet121.pt")) <= before,
            "model_id": model.model_id, "device": str(evaluation.device), "card": _card(model.card),
            "training_images": len(evaluation.reference_train)}


def _card(card) -> dict:
    from synthgate.reporting.report import plain

    return plain(dataclasses.asdict(card))


def hardware() -> dict:
    import torch

    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average_at_start": list(os.getloadavg()), "python": platform.python_version(),
            "torch": torch.__version__}


def run_study(root: Path, cache_dir: Path, reports: Path, extra: list[str] = ()) -> dict:
    """Gate every release of a built study; write ``results.json``, ``results.md`` and the learning curve."""
    reports.mkdir(parents=True, exist_ok=True)
    folders = release_folders(root)
    facts = json.loads((root / "study.json").read_text())
    results = {"study": facts, "folder": str(root), "hardware": hardware(), "extra_args": list(extra)}
    results["reference_model"] = train_reference(next(iter(folders.values())), cache_dir)
    runs = []
    for name, folder in folders.items():
        print(f"gating {name} ...", file=sys.stderr, flush=True)
        run = gate(folder, reports, cache_dir, extra)
        expect = facts["releases"][name]["expect"]
        run["expected"] = expect
        run["failed"] = failed_checks(run["summary"])
        run["as_expected"] = (run["summary"]["verdict"] == "cleared") if expect["cleared"] else (
            run["summary"]["verdict"] == "blocked" and run["failed"] == sorted(expect["blocked_by"]))
        print(f"  {run['summary']['verdict']} in {run['seconds']:.0f} s; failed: {', '.join(run['failed']) or 'none'}",
              file=sys.stderr, flush=True)
        runs.append(run)
    results["releases"] = [{k: v for k, v in run.items() if k != "summary"} | _digest(run["summary"]) for run in runs]
    (reports / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    curve = learning_curve(runs, reports / "learning-curve.png")
    (reports / "results.md").write_text(markdown(results, curve))
    return results


def _digest(summary: dict) -> dict:
    """What the study keeps of a gate summary: verdict, every criterion's numbers, the two tables."""
    keep = ("id", "outcome", "value", "ci_low", "ci_high", "minimum", "judged_on", "judged_value", "message")
    return {"verdict": summary["verdict"], "criteria": [{k: c.get(k) for k in keep} for c in summary["criteria"]],
            "tables": summary["tables"], "model_card": summary.get("model_card")}


# --------------------------------------------------------------------------- tables and the learning curve


def _f(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(value, low, high) -> str:
    return "n/a" if value is None else f"{value:.3f} [{low:.3f}, {high:.3f}]"


def learning_curve(runs: list[dict], png: Path) -> dict:
    """AUROC on the real test set vs real training images: R, and R+S at the largest ratio run at every size, per release."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {}
    for run in runs:
        rows = (run["summary"]["tables"] or {}).get("utility") or []
        largest = max([row["ratio"] for row in rows if row["framework"] == "R+S" and not row["unavailable"]], default=None)
        for row in rows:
            if row["unavailable"] or row["framework"] not in ("R", "R+S") or row["ratio"] not in (None, largest):
                continue
            key = "R" if row["framework"] == "R" else f"R+S {row['ratio']:g}x ({run['name']})"
            curves.setdefault((row["class"], key), []).append(
                (row["n_real"], row["ensemble_auroc"], row["ensemble_auroc_ci_low"], row["ensemble_auroc_ci_high"],
                 row["auroc_mean"], row["auroc_sd"]))
    curves = {k: sorted(dict((p[0], p) for p in v).values()) for k, v in curves.items()}
    classes = sorted({c for c, _ in curves})
    figure, axes = plt.subplots(1, len(classes), figsize=(7 * len(classes), 4.5), squeeze=False)
    for axis, class_name in zip(axes[0], classes):
        for (c, key), points in sorted(curves.items(), key=lambda kv: (kv[0][1] != "R", kv[0][1])):
            if c != class_name:
                continue
            n, auroc, low, high = (np.array([p[i] for p in points], dtype=float) for i in range(4))
            axis.errorbar(n, auroc, yerr=[auroc - low, high - auroc], marker="o", capsize=3, label=key,
                          linewidth=2.5 if key == "R" else 1.2)
        axis.set_xscale("log")
        axis.set_xlabel("real training images")
        axis.set_ylabel(f"AUROC on the real test set ({class_name})")
        axis.set_title("Learning curve: real (R) vs real + synthetic (R+S)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(png, dpi=120)
    plt.close(figure)
    return {f"{c}: {k}": [{"n_real": p[0], "auroc": p[1], "ci": [p[2], p[3]], "seed_mean": p[4], "seed_sd": p[5]}
                          for p in points] for (c, k), points in curves.items()}


def markdown(results: dict, curve: dict) -> str:
    facts, model, hw = results["study"], results["reference_model"], results["hardware"]
    trained = "loaded from the cache" if model["from_cache"] else f"{model['seconds']:.0f} s"
    lines = [f"# {facts['study']}: real-data study at {facts['size']} px", "",
             f"Data: `{facts['data']}` ({facts['images_in_data']} images, {facts['patient_groups_in_data']} patient groups), "
             f"{facts['patients']:.0%} of the patient groups used, seed {facts['seed']}. Hardware: {hw['processor']}, "
             f"{hw['cpu_count']} CPU cores, {hw['torch_threads']} torch threads, GPU: {hw['cuda'] or 'none'} "
             f"(load average at start {', '.join(f'{x:.1f}' for x in hw['load_average_at_start'])}).", "",
             "| part | patients | images | positives |", "|---|---|---|---|"]
    for part, p in facts["parts"].items():
        lines.append(f"| {part} | {p['patients']} | {p['images']} | {', '.join(f'{c} {n}' for c, n in p['positives'].items())} |")
    dropped = facts["identical_copies_dropped"]
    lines += ["", f"Byte-identical copies dropped within parts: {sum(dropped.values())} "
                  f"({', '.join(f'{k} {v}' for k, v in dropped.items()) or 'none'}); patients merged because they "
                  f"share a file: {facts['patients_linked_by_identical_files']}.", ""]

    lines += ["## Verdicts", "", "| release | expected | verdict | failed checks | as expected | gate time |", "|---|---|---|---|---|---|"]
    for r in results["releases"]:
        expected = "cleared" if r["expected"]["cleared"] else "blocked by " + ", ".join(r["expected"]["blocked_by"])
        lines.append(f"| {r['name']} | {expected} | **{r['verdict']}** | {', '.join(r['failed']) or '-'} | "
                     f"{'yes' if r['as_expected'] else '**NO**'} | {r['seconds']:.0f} s |")

    lines += ["", "## Reference model (DenseNet121 trained on reference-train only)", "",
              f"Trained at {facts['size']} px on {model['training_images']} reference-train images "
              f"({trained} on {model['device']}); "
              f"best epoch {model['card']['validation_metrics'].get('best_epoch')}, validation AUROC "
              f"{', '.join(f'{k} {v:.3f}' for k, v in model['card']['validation_metrics'].get('auroc', {}).items())}.", "",
              "| model | test set | AUROC | ACC |", "|---|---|---|---|"]
    first = next((r for r in results["releases"] if r["tables"] and r["tables"].get("pretrained")), None)
    for row in (first["tables"]["pretrained"] if first else []):
        if row["set"] == "real test":
            lines.append(f"| synthgate reference DenseNet121, {facts['size']} px | patient-wise reference-test, {row['images']} images "
                         f"({row['positives']} {row['class']}) | {_ci(row['auroc'], row['auroc_ci_low'], row['auroc_ci_high'])} | "
                         f"{_ci(row['accuracy'], row['accuracy_ci_low'], row['accuracy_ci_high'])} |")
    for label, auroc, acc in PUBLISHED:
        lines.append(f"| {label} | official test split, 624 images | {auroc:.3f} | {acc:.3f} |")

    lines += ["", "## Measured values of every gated number", ""]
    for r in results["releases"]:
        lines += [f"### {r['name']}", "", "| criterion | value [95% CI] | judged on | minimum | outcome |", "|---|---|---|---|---|"]
        for c in r["criteria"]:
            if c["minimum"] is not None:  # threshold criteria; the release-level checks follow
                lines.append(f"| {c['id'].split('::')[-1]} | {_ci(c['value'], c['ci_low'], c['ci_high'])} | {c['judged_on']} | "
                             f"{_f(c['minimum'])} | {c['outcome']} |")
        m = r.get("measurements", {})
        if "distribution" in m:
            d, limits = m["distribution"], m["distribution"]["limits"]
            fr = d["frechet"]["all"]
            lines.append(f"| Frechet distance / real-vs-real distance | {fr['ratio']:.2f} ({fr['synthetic']:.2f} vs {fr['baseline']:.2f}) | "
                         f"point | at most {limits['frechet_ratio_max']:g} | {_outcome(r, 'test_frechet_distance_near_real_baseline')} |")
            det, base = d["detectability"], d["baseline_detectability"]
            lines.append(f"| detectability AUROC (real vs real: {_ci(*base)}) | {_ci(*det)} | point | "
                         f"at most {limits['detectability_auroc_max']:g} | {_outcome(r, 'test_not_detectable_as_synthetic')} |")
            dup = d["duplicate_fraction"]
            lines.append(f"| fraction with a near-duplicate in the release (real: {dup['baseline']:.3f}) | {dup['synthetic']:.3f} | "
                         f"point | at most {limits['duplicate_fraction_max']:g} | {_outcome(r, 'test_no_mode_collapse')} |")
        if "privacy" in m:
            p = m["privacy"]
            checks = {"generator source images": "test_no_memorised_training_images", "reference images": "test_no_copies_of_reference_images"}
            for real_set, value in p["max_similarity"].items():
                lines.append(f"| highest pixel similarity to {real_set} (held-out real: {p['baseline'][real_set]:.3f}) | {value:.3f} "
                             f"({p['flagged'][real_set]} images above it) | point | at most {p['threshold']:g} | "
                             f"{_outcome(r, checks.get(real_set, ''))} |")
        lines.append("")

    lines += ["## Retraining on real test (probe on the reference model's features)", "",
              "Accuracy and precision: mean ± sd over seeds (threshold chosen on the validation split); "
              "AUROC: of the seed-averaged scores, with a 95% bootstrap CI.", ""]
    for r in results["releases"]:
        rows = (r["tables"] or {}).get("utility") or []
        if not rows:
            continue
        lines += [f"### {r['name']}", "", "| class | framework | real size | ratio | n real | n synthetic | Accuracy | Precision | AUROC [95% CI] |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in rows:
            if row["unavailable"]:
                continue
            ratio = "" if row["ratio"] is None else f"{row['ratio']:.0%}"
            lines.append(f"| {row['class']} | {row['framework']} | {row['size']:.0%} | {ratio} | "
                         f"{row['n_real']} | {row['n_synthetic']} | {_f(row['accuracy_mean'])} ± {_f(row['accuracy_sd'])} | "
                         f"{_f(row['precision_mean'])} ± {_f(row['precision_sd'])} | "
                         f"{_ci(row['ensemble_auroc'], row['ensemble_auroc_ci_low'], row['ensemble_auroc_ci_high'])} |")
        lines.append("")
    lines += ["## Learning curve (AUROC on real test vs real training images)", "", "![learning curve](learning-curve.png)", ""]
    for key, points in curve.items():
        lines.append(f"- {key}: " + "; ".join(f"{p['n_real']}: {_ci(p['auroc'], *p['ci'])}" for p in points))
    return "\n".join(lines) + "\n"


def _outcome(run: dict, check: str) -> str:
    return next((c["outcome"] for c in run["criteria"] if c["id"].split("::")[-1] == check), "")


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synthgate.study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, help="study file (default fixtures/kermany/study.toml)")
    parser.add_argument("--size", type=int, help="image size in pixels (default: the study's size)")
    parser.add_argument("--patients", type=float, help="fraction of the patient groups to use (default: all)")
    parser.add_argument("--profile", help="take size and patients from [profiles.NAME] of the study file (e.g. ci)")
    parser.add_argument("--data", type=Path, help="the data set's folder, instead of [data] path")
    parser.add_argument("--cache", type=Path, help="cache folder (default $SYNTHGATE_CACHE, else ~/.cache/synthgate)")
    parser.add_argument("--run", action="store_true", help="gate every release and write the results")
    parser.add_argument("--reports", type=Path, help="where --run writes (default reports/<study>/<size>px)")
    parser.add_argument("--gate-arg", action="append", default=[], help="extra argument for each gate run (repeatable)")
    args = parser.parse_args(argv)
    from synthgate.storage import default_cache_dir

    cache = (args.cache or default_cache_dir()).resolve()
    try:
        study = load_study(args.study, args.size, args.patients, args.profile, args.data)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 4
    start = time.perf_counter()
    root = build_study(cache, study)
    print(f"study: {root} (built or found in {time.perf_counter() - start:.0f} s)")
    for name, folder in release_folders(root).items():
        print(f"  {name}: {folder}")
    if not args.run:
        return 0
    reports = (args.reports or Path("reports") / study.name / f"{study.size}px").resolve()
    results = run_study(root, cache, reports, [*study.gate_args, *args.gate_arg])
    print(f"results: {reports / 'results.md'}")
    return 0 if all(r["as_expected"] for r in results["releases"]) else 1


if __name__ == "__main__":
    sys.exit(main())
