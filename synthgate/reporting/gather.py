"""Gathering what a gate session computed into plain data.

``gather`` reads the results a session already computed (it never starts a new
computation) into dicts, lists, numbers and strings, so the HTML report, the CSV/JSON
tables and the scores file show the same numbers, and a pytest-xdist worker can hand
its results to the controller.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from synthgate.gate.criteria import NOT_APPLICABLE_UNLABELLED
from synthgate.gate.policy import EVERY_CLASS
from synthgate.measures.bootstrap import METRICS
from synthgate.reporting.figures import strip
from synthgate.reporting.paths import Places
from synthgate.reporting.prevalence import called_positive, gather_prevalence

SAMPLES_PER_CLASS = 6
PAIRS_SHOWN = 8
DETAIL_ROWS_KEPT = 100


def gather(gate) -> dict:
    """Plain data of everything the gate session computed: identity, policy, model card, tables, scores, samples.

    Files are named as the customer reads them (:mod:`synthgate.reporting.paths`); the
    thumbnails are rendered here, so nothing downstream needs a path on this machine.
    """
    evaluation = gate.evaluation
    computed = evaluation.computed
    places = Places(evaluation.release)
    data = {
        "release": _identity(evaluation, places),
        "policy": _policy(gate),
        "resolution": _resolution(evaluation),
        "samples": _samples(evaluation, places),
        "path_names": places.replacements(),  # for scrubbing messages; never written
    }
    if computed("model") or computed("model_id"):  # the card saved with the weights the checks used
        data["model_card"] = dataclasses.asdict(evaluation.saved_card)
    elif computed("model_card"):
        data["model_card"] = dataclasses.asdict(evaluation.model_card)
    if data.get("model_card"):
        data["resolution"]["model_input"] = data["model_card"]["input_size"]
        data["resolution"]["finding_warnings"] = finding_warnings(evaluation.release, data["model_card"]["input_size"])
    if computed("reference_roles") and data.get("model_card"):
        data["model_card"]["reference_roles"] = evaluation.reference_roles.backbone
    if computed("pretrained"):
        data["pretrained"] = _pretrained_rows(evaluation)
    if computed("utility"):
        data["utility"] = _utility_rows(evaluation)
    if computed("prevalence"):
        data["prevalence"] = gather_prevalence(evaluation)
    if computed("pretrained") or computed("utility") or computed("prevalence"):
        data["scores"] = _scores(evaluation, places)
    if computed("distribution"):
        data["distribution"] = _distribution(evaluation.distribution)
        data["near_duplicates"], data["duplicate_strips"] = _near_duplicates(evaluation, places)
    if computed("privacy"):
        pairs = evaluation.privacy.worst_pairs
        data["memorisation"] = [{"synthetic": places.name(p.synthetic), "match": places.name(p.real),
                                 "similarity": p.similarity, "feature_similarity": p.feature_similarity,
                                 "real_set": p.real_set} for p in pairs]
        data["memorisation_strips"] = [strip([p.synthetic, p.real], 96) for p in pairs[:PAIRS_SHOWN]]
        data["feature_neighbours"] = {name: {"synthetic_median": c.synthetic, "real_median": c.baseline}
                                      for name, c in evaluation.privacy.feature_neighbours.items()}
    return plain(data)


def plain(value):
    """JSON's types only (numpy scalars unwrapped, NaN as None): safe to send between processes and to write."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _policy(gate) -> dict:
    """The policy applied, the classes it names, and every requirement with the file that set its bound."""
    policy = gate.policy
    named = [scope for _, scope in policy.thresholds if scope not in (None, EVERY_CLASS)]
    return {
        "file": policy.file.name if not policy.builtin else "built-in default policy",
        "builtin": policy.builtin,
        "sha256": policy.sha256,
        "named_classes": [name for name in dict.fromkeys(named) if name in gate.release.class_names],
        "min_positives": policy.min_positives,
        "min_negatives": policy.min_negatives,
        "accept_missing": sorted(policy.accept_missing),
        "grid": dataclasses.asdict(gate.release.utility),
        "requirements": [{"key": r.key, "criterion": r.criterion, "class": r.class_name, "bound": r.bound,
                          "direction": r.spec.direction, "judge": r.judge, "source": r.source}
                         for r in gate.requirements],
        "not_applicable": [{"key": r.key, "criterion": r.criterion, "class": r.class_name,
                            "reason": NOT_APPLICABLE_UNLABELLED} for r in getattr(gate, "not_applicable", [])],
    }


def _identity(evaluation, places: Places) -> dict:
    release = evaluation.release
    reference = release.reference
    return {
        "name": release.name,
        "path": release.root.name,
        "description": release.description,
        "content_hash": evaluation.integrity.content_hash,
        "config_hash": release.config_hash,
        "images": len(release.manifest.rows),
        "class_counts": evaluation.class_counts,
        "labelled": release.labelled,
        "classes": [dataclasses.asdict(c) for c in release.classes],
        "generator": release.generator,
        "source_datasets": list(release.source_datasets),
        "reference": None if reference is None else {
            which: {"path": places.folder(ref.path), "datasets": list(ref.datasets)}
            for which, ref in (("train", reference.train), ("test", reference.test))
        },
        "statistics": dataclasses.asdict(release.statistics),
        "evaluated_images": evaluation.evaluated_counts(),
        "utility_overrides": evaluation.options.utility_overrides,
    }


# DenseNet121's stem (a stride-2 convolution, then a stride-2 pooling): a finding smaller than this many input
# pixels falls within one cell of its first feature map.
MIN_FINDING_INPUT_PX = 4


def finding_warnings(release, model_input: int) -> list[str]:
    """Classes whose smallest finding of interest (``smallest_finding_px``, as delivered) spans fewer than
    ``MIN_FINDING_INPUT_PX`` pixels at the evaluating model's input: its checks may not see that finding at all."""
    scale = model_input / max(release.images.width, release.images.height)
    return [f"{c.name}: its smallest finding of interest ({c.smallest_finding_px} px as delivered) spans "
            f"{c.smallest_finding_px * scale:.1f} px at the evaluating model's {model_input} px input, below the "
            f"{MIN_FINDING_INPUT_PX} px its first layers resolve: evaluate with a larger model input"
            for c in release.classes if c.smallest_finding_px and c.smallest_finding_px * scale < MIN_FINDING_INPUT_PX]


def _resolution(evaluation) -> dict:
    """The size each kind of check looked at the images: as delivered, the model's input, the pixel comparisons'."""
    from synthgate.data.imaging import PIXEL_SIZE

    release = evaluation.release
    return {"delivered": [release.images.width, release.images.height], "model_input": None, "pixel": PIXEL_SIZE,
            "duplicate_max_shift": release.distribution.max_shift, "memorisation_max_shift": release.privacy.max_shift,
            "duplicate_resolution": release.distribution.resolution,
            "memorisation_resolution": release.privacy.resolution}


def _comparison(c) -> dict:
    return {"synthetic": c.synthetic, "real": c.baseline}


def _estimate(e) -> dict:
    return {"value": e.value, "ci_low": e.low, "ci_high": e.high}


def _distribution(d) -> dict:
    """Every distribution number beside its real-vs-real baseline (the gate judges some; the rest are reported)."""
    return {
        "target": d.target, "n_synthetic": d.n_synthetic, "n_real": d.n_real,
        "frechet": {scope: {**_comparison(c), "ratio": c.ratio, "ratio_interval": list(c.ratio_interval),
                            "real_interval": list(c.baseline_interval), "halvings": len(c.baseline_runs)}
                    for scope, c in d.frechet.items()},
        "kid": {scope: {"synthetic": {"mean": s.mean, "sd": s.std}, "real": {"mean": r.mean, "sd": r.std}}
                for scope, (s, r) in d.kid.items()},
        "prdc": {key: _comparison(c) for key, c in d.prdc.items()},
        "detectability": {"synthetic": _estimate(d.detectability), "real": _estimate(d.baseline_detectability)},
        "duplicate_fraction": _comparison(d.duplicate_fraction),
    }


def _near_duplicates(evaluation, places: Places) -> tuple[dict, list]:
    """Groups of synthetic images the gated pixel similarity calls near-duplicates, beside the real-vs-real fraction."""
    d, spec = evaluation.distribution, evaluation.release.distribution
    clusters = d.duplicate_clusters
    summary = {
        "similarity": spec.duplicate_similarity, "max_shift": spec.max_shift,
        "fraction": d.duplicate_fraction.synthetic, "real_fraction": d.duplicate_fraction.baseline,
        "above_real": d.duplicate_fraction.synthetic > d.duplicate_fraction.baseline,
        "clusters_count": len(clusters),
        "clusters": [{"images": len(c), "files": [places.name(p) for p in c[:SAMPLES_PER_CLASS]]}
                     for c in clusters[:PAIRS_SHOWN]],
    }
    strips = [strip(c[:SAMPLES_PER_CLASS], 96) for c in clusters[:PAIRS_SHOWN]] if summary["above_real"] else []
    return summary, strips


def _spread(items: list, k: int) -> list:
    """Up to ``k`` items evenly spaced through the list (deterministic, not just the first few)."""
    if len(items) <= k:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, k).round().astype(int)]


def _samples(evaluation, places: Places) -> dict:
    """A few positive images per class, named and as a thumbnail strip: real reference test (when loaded) and synthetic."""
    release = evaluation.release
    decoded = evaluation.integrity.facts
    samples = {}
    for name in release.class_names:
        synthetic = [release.root / r.path for r in release.manifest.rows if r.labels.get(name) == "1" and r.path in decoded]
        if not release.labelled:  # no labels: the images the evaluating model calls positive, once it has scored them
            synthetic = called_positive(evaluation, name) if evaluation.computed("prevalence") else []
        real = []
        if evaluation.computed("reference_test"):
            test = evaluation.reference_test
            real = [test.paths[i] for i in np.flatnonzero(test.column(name))]
        chosen = {"real test": _spread(real, SAMPLES_PER_CLASS), "synthetic": _spread(synthetic, SAMPLES_PER_CLASS)}
        samples[name] = {which: {"files": [places.name(p) for p in paths], "strip": strip([str(p) for p in paths])}
                         for which, paths in chosen.items()}
    return samples


def _estimate_columns(prefix: str, estimate) -> dict:
    if estimate is None:
        return {prefix: None, f"{prefix}_ci_low": None, f"{prefix}_ci_high": None}
    return {prefix: estimate.value, f"{prefix}_ci_low": estimate.low, f"{prefix}_ci_high": estimate.high}


def _pretrained_rows(evaluation) -> list[dict]:
    """One row per class and image set (real test, synthetic), at the threshold chosen on validation."""
    splits = evaluation.splits
    rows = []
    for name, result in evaluation.pretrained.items():
        for set_name, split, estimates in (("real test", "test", result.real), ("synthetic", "synthetic", result.synthetic)):
            labels = splits[split].column(name)
            row = {"class": name, "set": set_name, "images": len(labels), "positives": int(labels.sum()),
                   "threshold": result.threshold}
            for metric in METRICS:
                row.update(_estimate_columns(metric, estimates[metric] if estimates else None))
            synthetic_row = set_name == "synthetic"
            row.update(_estimate_columns("auroc_difference", result.auroc_difference if synthetic_row else None))
            row["problem"] = result.problem if synthetic_row else ""
            rows.append(row)
    return rows


def cell_id(framework: str, size: float, ratio: float | None) -> str:
    """A grid cell's name in the tables and the scores file, e.g. ``R+S@1x2`` (full size, 2 synthetic per real)."""
    return f"{framework}@{size:g}" + (f"x{ratio:g}" if ratio is not None else "")


def _utility_rows(evaluation) -> list[dict]:
    """One row per class and grid cell; metrics are mean and sd over seeds, AUROC also of the seed-averaged scores."""
    seeds = len(evaluation.utility_spec.seeds)
    rows = []
    for name in evaluation.release.class_names:
        for cell in evaluation.utility:
            row = {"class": name, "cell": cell_id(cell.framework, cell.size, cell.ratio), "framework": cell.framework,
                   "size": cell.size, "ratio": cell.ratio, "n_real": cell.n_real, "n_synthetic": cell.n_synthetic,
                   "seeds": seeds}
            for metric in METRICS:
                mean_std = cell.metrics.get(name, {}).get(metric)
                row[f"{metric}_mean"], row[f"{metric}_sd"] = mean_std if mean_std else (None, None)
            row.update(_estimate_columns("seed_auroc", cell.auroc_ci.get(name)))
            row.update(_estimate_columns("versus_real", cell.versus_real.get(name)))
            row["problem"] = cell.problems.get(name, "")
            row["unavailable"] = cell.unavailable
            rows.append(row)
    return rows


def _scores(evaluation, places: Places) -> dict:
    """Per image set: image ids, labels and the scores every table was computed from."""
    splits, release = evaluation.splits, evaluation.release
    computed = evaluation.computed
    wanted = {"real test": "test"}
    if computed("pretrained") or computed("prevalence"):
        wanted = {"validation": "validation", "real test": "test", "synthetic": "synthetic"}
    index = evaluation.class_outputs()
    scores = {}
    for set_name, split in wanted.items():
        collection = splits[split]
        entry = {
            "images": [places.name(p) for p in collection.paths],
            "sha256": list(collection.digests),
            "patients": ["" if group.startswith("image:") else group for group in collection.groups],
            "labels": {name: collection.column(name).tolist() if collection.labelled else [None] * len(collection)
                       for name in release.class_names},
        }
        if computed("pretrained") or computed("prevalence"):
            model_scores = evaluation.embeddings(collection).scores
            entry["pretrained"] = {name: model_scores[:, k].tolist() for name, k in index.items()}
        scores[set_name] = entry
    if computed("utility"):  # each training seed's model: the intervals resample seeds too
        seeds = evaluation.utility_spec.seeds
        scores["real test"]["utility"] = {
            f"{cell_id(c.framework, c.size, c.ratio)}:{name}:seed{seed}": row.tolist()
            for c in evaluation.utility for name, rows in c.seed_scores.items() for seed, row in zip(seeds, rows)
        }
    return scores


def merge(parts: list[dict]) -> dict:
    """One report's data from several workers' (each computed what its tests needed)."""
    merged: dict = {}
    for part in parts:
        merged = _merge_two(merged, part)
    return merged


def _merge_two(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return {key: _merge_two(a.get(key), b.get(key)) if key in a and key in b else a.get(key, b.get(key))
                for key in {**a, **b}}
    return a if a else b
