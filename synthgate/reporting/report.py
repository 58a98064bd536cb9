"""What a gate run reports: the verdict and summary, tables, plots and the HTML document.

``gather`` reads the results a session already computed (it never starts a new
computation) into plain data: dicts, lists, numbers, strings. Everything else
renders that data, so the HTML report, the CSV/JSON tables and the scores file
show the same numbers, and a pytest-xdist worker can hand its results to the
controller. Nothing here imports pytest.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import math
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from synthgate import __version__
from synthgate.measures.metrics import METRICS

SUMMARY_SCHEMA_VERSION = 1
# Gate families in the order a reader meets them (also the pytest markers).
FAMILIES = {
    "integrity": "image files, manifest and labels are sound",
    "leakage": "the evaluating model never saw the generator's data",
    "fidelity": "a leakage-free model scores synthetic images like real ones",
    "utility": "training on synthetic data helps, or does not hurt",
    "distribution": "synthetic images are distributed like real ones",
    "privacy": "synthetic images are not copies of training images",
}
SAMPLES_PER_CLASS = 6
PAIRS_SHOWN = 8
DETAIL_ROWS_KEPT = 100
# Every criterion entry of the summary has these keys (None where they do not apply or were not measured).
CRITERION_FIELDS = ("id", "name", "kind", "family", "class", "description", "value", "ci_low", "ci_high", "n", "minimum",
                    "maximum", "baseline", "judged_on", "judged_value", "problem", "details_count", "details", "outcome",
                    "message")
FRAMEWORK_ORDER = {"R": 0, "R+S": 1, "S": 2, "S->R": 3}
METRIC_NAMES = {"accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "f1": "F1", "auroc": "AUROC"}


# --------------------------------------------------------------------------- gathering


def gather(evaluation) -> dict:
    """Plain data of everything the session computed: identity, model card, tables, scores, samples."""
    computed = evaluation.__dict__
    data = {
        "release": _identity(evaluation),
        "near_duplicates": _near_duplicates(evaluation),
        "samples": _samples(evaluation),
    }
    if "model" in computed:
        data["model_card"] = dataclasses.asdict(evaluation.model.card)
    elif "model_card" in computed:
        data["model_card"] = dataclasses.asdict(evaluation.model_card)
    if "pretrained" in computed:
        data["pretrained"] = _pretrained_rows(evaluation)
    if "utility" in computed:
        data["utility"] = _utility_rows(evaluation)
    if "pretrained" in computed or "utility" in computed:
        data["scores"] = _scores(evaluation)
    if "privacy" in computed:
        data["memorisation"] = [{"synthetic": p.synthetic, "match": p.real, "similarity": p.similarity,
                                 "feature_similarity": p.feature_similarity, "real_set": p.real_set}
                                for p in computed["privacy"].worst_pairs]
        data["feature_neighbours"] = {name: {"synthetic_median": c.synthetic, "real_median": c.baseline}
                                      for name, c in computed["privacy"].feature_neighbours.items()}
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


def _identity(evaluation) -> dict:
    release = evaluation.release
    reference = release.reference
    return {
        "name": release.name,
        "path": str(release.root),
        "description": release.description,
        "content_hash": evaluation.integrity.content_hash,
        "config_hash": release.config_hash,
        "images": len(release.manifest.rows),
        "class_counts": evaluation.class_counts,
        "classes": [dataclasses.asdict(c) for c in release.classes],
        "generator": release.generator,
        "source_datasets": list(release.source_datasets),
        "reference": None if reference is None else {
            which: {"path": str(ref.path), "datasets": list(ref.datasets)}
            for which, ref in (("train", reference.train), ("test", reference.test))
        },
        "statistics": dataclasses.asdict(release.statistics),
        "utility_overrides": evaluation.options.utility_overrides,
    }


def _near_duplicates(evaluation) -> dict:
    pairs = sorted(evaluation.integrity.near_duplicates, key=lambda p: (p[2], p[0], p[1]))
    return {
        "count": len(pairs),
        "max_bits": evaluation.release.integrity.near_duplicate_bits,
        "closest": [{"a": a, "b": b, "bits": bits} for a, b, bits in pairs[:PAIRS_SHOWN]],
    }


def _spread(items: list, k: int) -> list:
    """Up to ``k`` items evenly spaced through the list (deterministic, not just the first few)."""
    if len(items) <= k:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, k).round().astype(int)]


def _samples(evaluation) -> dict:
    """A few positive images per class: real reference test (when loaded) and synthetic (decodable ones)."""
    release, computed = evaluation.release, evaluation.__dict__
    decoded = evaluation.integrity.facts
    samples = {}
    for name in release.class_names:
        synthetic = [str(release.root / r.path) for r in release.manifest.rows if r.labels.get(name) == "1" and r.path in decoded]
        real = []
        if "reference_test" in computed:
            test = evaluation.reference_test
            real = [str(test.paths[i]) for i in np.flatnonzero(test.column(name))]
        samples[name] = {"real test": _spread(real, SAMPLES_PER_CLASS), "synthetic": _spread(synthetic, SAMPLES_PER_CLASS)}
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
            row.update(_estimate_columns("ensemble_auroc", cell.auroc_ci.get(name)))
            row.update(_estimate_columns("versus_real", cell.versus_real.get(name)))
            row["problem"] = cell.problems.get(name, "")
            row["unavailable"] = cell.unavailable
            rows.append(row)
    return rows


def _scores(evaluation) -> dict:
    """Per image set: image ids, labels and the scores every table was computed from."""
    computed, splits, release = evaluation.__dict__, evaluation.splits, evaluation.release
    wanted = {"real test": "test"}
    if "pretrained" in computed:
        wanted = {"validation": "validation", "real test": "test", "synthetic": "synthetic"}
    index = evaluation.class_outputs()
    scores = {}
    for set_name, split in wanted.items():
        collection = splits[split]
        entry = {
            "images": [Path(os.path.relpath(p, release.root)).as_posix() for p in collection.paths],
            "sha256": list(collection.digests),
            "labels": {name: collection.column(name).tolist() for name in release.class_names},
        }
        if "pretrained" in computed:
            model_scores = evaluation.embeddings(collection).scores
            entry["pretrained"] = {name: model_scores[:, k].tolist() for name, k in index.items()}
        scores[set_name] = entry
    if "utility" in computed:
        scores["real test"]["utility"] = {
            f"{cell_id(c.framework, c.size, c.ratio)}:{name}": s.tolist()
            for c in evaluation.utility for name, s in c.test_scores.items()
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


# --------------------------------------------------------------------------- criteria and verdict


def measured(criterion, estimate, problem: str, judged_value: float | None) -> dict:
    """What a threshold criterion was judged on, for the summary and the report."""
    return {
        "value": None if estimate is None else estimate.value,
        "ci_low": None if estimate is None else estimate.low,
        "ci_high": None if estimate is None else estimate.high,
        "n": None if estimate is None else estimate.n,
        "minimum": criterion.minimum,
        "judged_on": criterion.judge,
        "judged_value": judged_value,
        "problem": problem,
    }


def judge(criteria: list[dict], selection: dict) -> tuple[str, list[str]]:
    """cleared / blocked / incomplete, and why in plain words.

    Cleared needs every gate check of a complete selection to have run and passed;
    any failure or error blocks; anything else (skips, deselection, an early stop)
    leaves the release uncleared but not blocked.
    """
    failed = [c for c in criteria if c["outcome"] in ("failed", "error")]
    if failed:
        return "blocked", [f"{len(failed)} of {len(criteria)} gate checks failed"]
    reasons = list(selection.get("reasons", []))
    not_passed = [c for c in criteria if c["outcome"] != "passed"]
    if not_passed:
        reasons.append(f"{len(not_passed)} gate checks were not evaluated ({not_passed[0]['message'] or not_passed[0]['outcome']})")
    if not criteria:
        reasons.append("no gate checks ran")
    if reasons:
        return "incomplete", reasons
    return "cleared", [f"all {len(criteria)} gate checks passed"]


def criterion_title(entry: dict) -> str:
    """A criterion in plain words: 'soft tissue mass: AUROC of ...' or 'images decode'."""
    where = f"{entry['class']}: " if entry.get("class") else ""
    return where + entry["description"]


def _order(classes: list[str]):
    """Family by family, criterion by criterion, classes in the release's order (the one that matters most first)."""
    families = list(FAMILIES)

    def key(entry: dict) -> tuple:
        family = families.index(entry["family"]) if entry["family"] in FAMILIES else len(families)
        where = classes.index(entry["class"]) if entry["class"] in classes else -1
        return family, entry["name"] or "", where, entry["id"]

    return key


def build_summary(data: dict, criteria: list[dict], selection: dict, artifacts: dict) -> dict:
    """The machine-readable summary (docs/summary-schema.md)."""
    classes = [c["name"] for c in (data.get("release") or {}).get("classes", [])]
    criteria = sorted((dict.fromkeys(CRITERION_FIELDS) | entry for entry in criteria), key=_order(classes))
    verdict, reasons = judge(criteria, selection)
    counts = {outcome: sum(c["outcome"] == outcome for c in criteria) for outcome in ("passed", "failed", "error", "skipped")}
    return {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "tool": {"name": "synthgate", "version": __version__},
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "verdict": verdict,
        "verdict_reasons": reasons,
        "counts": {**counts, "total": len(criteria)},
        "selection": selection,
        "release": data.get("release"),
        "model_card": data.get("model_card"),
        "versions": versions(),
        "criteria": criteria,
        "tables": {"pretrained": data.get("pretrained"), "utility": data.get("utility")},
        "near_duplicates": data.get("near_duplicates"),
        "memorisation": data.get("memorisation"),
        "feature_neighbours": data.get("feature_neighbours"),
        "clearance": None,
        "artifacts": artifacts,
    }


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("synthgate", "torch", "torchvision", "torchxrayvision", "numpy", "scikit-learn", "pytest"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


# --------------------------------------------------------------------------- files beside the report


def artifact_paths(stem: Path | None, data: dict) -> dict[str, str]:
    """Where the tables and scores go: ``<stem>.pretrained.csv``, ``<stem>.utility.csv``, ``<stem>.scores.csv``."""
    if stem is None:
        return {}
    wanted = [key for key in ("pretrained", "utility") if data.get(key)] + (["scores"] if data.get("scores") else [])
    return {f"{key}_csv": f"{stem}.{key}.csv" for key in wanted}


def write_tables(data: dict, paths: dict[str, str]) -> None:
    """The pretrained and utility tables and the scores they were computed from, as CSV."""
    for key in ("pretrained", "utility"):
        if f"{key}_csv" in paths:
            _write_csv(Path(paths[f"{key}_csv"]), list(data[key][0]), data[key])
    if "scores_csv" in paths:
        header, rows = scores_table(data["scores"])
        _write_csv(Path(paths["scores_csv"]), header, [dict(zip(header, row)) for row in rows])


def scores_table(scores: dict) -> tuple[list[str], list[list]]:
    """One row per image and set; columns ``label:<class>``, ``pretrained:<class>``, ``utility:<cell>:<class>``."""
    label_keys = list(next(iter(scores.values()))["labels"])
    pretrained_keys = label_keys if any("pretrained" in e for e in scores.values()) else []
    utility_keys = list(scores.get("real test", {}).get("utility", {}))
    header = ["set", "image", "sha256", *[f"label:{k}" for k in label_keys],
              *[f"pretrained:{k}" for k in pretrained_keys], *[f"utility:{k}" for k in utility_keys]]
    rows = []
    for set_name, entry in scores.items():
        columns = [entry["labels"][k] for k in label_keys]
        columns += [entry.get("pretrained", {}).get(k, [None] * len(entry["images"])) for k in pretrained_keys]
        columns += [entry.get("utility", {}).get(k, [None] * len(entry["images"])) for k in utility_keys]
        for i, (image, digest) in enumerate(zip(entry["images"], entry["sha256"])):
            rows.append([set_name, image, digest, *[column[i] for column in columns]])
    return header, rows


def _write_csv(path: Path, header: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)



# --------------------------------------------------------------------------- figures


def _png_uri(figure_or_image) -> str:
    buffer = io.BytesIO()
    if hasattr(figure_or_image, "savefig"):
        figure_or_image.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    else:
        figure_or_image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(panels: int):
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend state

    figure = Figure(figsize=(3.6 * panels, 3.4), layout="constrained")
    return figure, figure.subplots(1, panels, squeeze=False)[0]


def roc_figure(scores: dict, classes: list[str]) -> str | None:
    """ROC curves per class: the pretrained model on the real test set and on the synthetic images."""
    from sklearn.metrics import roc_auc_score, roc_curve

    sets = [s for s in ("real test", "synthetic") if "pretrained" in scores.get(s, {})]
    if not sets:
        return None
    figure, axes = _figure(len(classes))
    for axis, name in zip(axes, classes):
        for set_name, colour in zip(sets, ("#1f4e79", "#c55a11")):
            labels, values = np.asarray(scores[set_name]["labels"][name]), np.asarray(scores[set_name]["pretrained"][name])
            if 0 < labels.sum() < len(labels):
                fpr, tpr, _ = roc_curve(labels, values)
                axis.plot(fpr, tpr, color=colour, label=f"{set_name} (AUROC {roc_auc_score(labels, values):.3f})")
        axis.plot([0, 1], [0, 1], color="#bbbbbb", linestyle=":", linewidth=1)
        axis.set(title=name, xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
        axis.legend(loc="lower right", fontsize=8)
    return _png_uri(figure)


def learning_curve_figure(rows: list[dict], classes: list[str]) -> str | None:
    """Real-test AUROC against the number of real training images: R, and R+S at each ratio (error bars: sd over seeds)."""
    if not rows:
        return None
    figure, axes = _figure(len(classes))
    for axis, name in zip(axes, classes):
        mine = [r for r in rows if r["class"] == name and r["auroc_mean"] is not None]
        series = sorted({(r["framework"], r["ratio"]) for r in mine if r["framework"] in ("R", "R+S")},
                        key=lambda s: (FRAMEWORK_ORDER[s[0]], s[1] or 0))
        for framework, ratio in series:
            points = sorted((r for r in mine if (r["framework"], r["ratio"]) == (framework, ratio)), key=lambda r: r["n_real"])
            label = "R (real only)" if framework == "R" else f"R+S, {ratio:g} synthetic per real"
            axis.errorbar([p["n_real"] for p in points], [p["auroc_mean"] for p in points],
                          yerr=[p["auroc_sd"] or 0 for p in points], marker="o", markersize=3, capsize=2, label=label,
                          linewidth=2 if framework == "R" else 1, color="black" if framework == "R" else None)
        for framework, marker in (("S", "s"), ("S->R", "^")):
            for r in (r for r in mine if r["framework"] == framework):
                axis.errorbar([r["n_real"] or r["n_synthetic"]], [r["auroc_mean"]], yerr=[r["auroc_sd"] or 0], marker=marker,
                              linestyle="none", capsize=2, label=f"{framework} ({r['n_synthetic']} synthetic)")
        axis.set(title=name, xlabel="real training images", ylabel="AUROC on real test")
        axis.legend(fontsize=7, loc="lower right")
    return _png_uri(figure)


def _thumbnail(path: str, size: int):
    from PIL import Image

    from synthgate.data.imaging import open_image, to_grey_array

    image = open_image(path)
    try:
        grey, max_value = to_grey_array(image)
    except ValueError:  # colour RGB or an unusual mode: the integrity checks report it; still show it
        grey, max_value = np.asarray(image.convert("L")), 255.0
    eight_bit = (grey.astype(np.float32) / max_value * 255).clip(0, 255).astype(np.uint8)
    thumb = Image.fromarray(eight_bit)
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    return thumb


def strip(paths: list[str], size: int = 112) -> str | None:
    """Thumbnails side by side as one PNG data URI (downsized; never the full-resolution images)."""
    from PIL import Image

    if not paths:
        return None
    thumbs = [_thumbnail(p, size) for p in paths]
    gap = 4
    canvas = Image.new("L", (sum(t.width for t in thumbs) + gap * (len(thumbs) - 1), max(t.height for t in thumbs)), 255)
    x = 0
    for thumb in thumbs:
        canvas.paste(thumb, (x, 0))
        x += thumb.width + gap
    return _png_uri(canvas)


# --------------------------------------------------------------------------- the HTML document


def _number(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _with_ci(row: dict, key: str) -> dict | None:
    if row.get(key) is None:
        return None
    return {"value": _number(row[key]), "ci": f"[{_number(row[f'{key}_ci_low'])}, {_number(row[f'{key}_ci_high'])}]"}


def _mean_sd(row: dict, metric: str) -> str:
    mean, sd = row.get(f"{metric}_mean"), row.get(f"{metric}_sd")
    return "–" if mean is None else f"{mean:.3f} ± {sd:.3f}" if sd is not None else f"{mean:.3f}"


def _training_data(row: dict) -> str:
    if row["framework"] == "R+S":
        return f"R+S ({row['ratio']:g}:1)"
    return {"R": "R (real only)", "S": "S (synthetic only)", "S->R": "S→R (pre-train S, fine-tune R)"}[row["framework"]]


def _criterion_view(entry: dict) -> dict:
    shown = entry.get("value")
    if entry["kind"] == "check" and entry.get("maximum") is not None:  # a release-level number and its limit
        beside = "" if entry.get("baseline") is None else f" (real vs real {_number(entry['baseline'])})"
        return {**entry, "title": criterion_title(entry), "value_text": _number(shown) + beside,
                "rule": f"≤ {entry['maximum']:g}"}
    if entry["kind"] == "check":  # pass/fail checks report what they found in their message
        value = (entry["message"] or entry["outcome"]).splitlines()[0] if entry["outcome"] != "passed" else "–"
        return {**entry, "title": criterion_title(entry), "value_text": value, "rule": ""}
    value = "–" if shown is None else _number(shown)
    if entry.get("ci_low") is not None:
        value += f" [{_number(entry['ci_low'])}, {_number(entry['ci_high'])}]"
    judged = {"point": "point estimate", "ci_low": "lower CI bound", "ci_high": "upper CI bound"}[entry["judged_on"]]
    rule = f"≥ {entry['minimum']:g} ({judged})"
    return {**entry, "title": criterion_title(entry), "value_text": value, "rule": rule}


def _card_view(card: dict | None) -> list[tuple[str, str]]:
    if not card:
        return []
    metrics = card.get("validation_metrics") or {}
    aurocs = metrics.get("auroc", {})
    metric_text = ", ".join(f"{k} {_number(v)}" for k, v in aurocs.items()) if isinstance(aurocs, dict) else ""
    if "best_epoch" in metrics:
        metric_text += f" (best epoch {metrics['best_epoch']})"
    return [
        ("model", card["model_id"]),
        ("architecture", f"{card['architecture']}, inputs {card['input_size']} px, {card['normalisation']}"),
        ("trained on", ", ".join(card["training_datasets"])),
        ("training images fingerprint", card.get("training_fingerprint") or "not recorded (published weights)"),
        ("outputs", ", ".join(o for o in card["outputs"] if o)),
        ("validation AUROC", metric_text or "not recorded"),
        ("seed", str(card.get("seed"))),
        ("built with", ", ".join(f"{k} {v}" for k, v in card.get("library_versions", {}).items())),
        ("source", card.get("source", "")),
    ]


def document_context(summary: dict, data: dict) -> dict:
    """Everything the template shows, formatted: the template only lays it out."""
    release = data.get("release") or {}
    classes = [c["name"] for c in release.get("classes", [])]
    criteria = [_criterion_view(c) for c in summary["criteria"]]
    pretrained = data.get("pretrained") or []
    utility = data.get("utility") or []
    release_root = Path(release.get("path", "."))
    near = data.get("near_duplicates") or {"count": 0, "closest": []}
    return {
        "summary": summary,
        "verdict": summary["verdict"],
        "failed": [c for c in criteria if c["outcome"] in ("failed", "error")],
        "not_evaluated": [c for c in criteria if c["outcome"] not in ("passed", "failed", "error")],
        "criteria": criteria,
        "release": release,
        "card": _card_view(data.get("model_card")),
        "metrics": [(m, METRIC_NAMES[m]) for m in METRICS],
        "pretrained": [
            {**row, "cells": {m: _with_ci(row, m) for m in METRICS}, "difference": _with_ci(row, "auroc_difference")}
            for row in pretrained
        ],
        "roc": roc_figure(data.get("scores") or {}, classes) if pretrained else None,
        "utility": {
            name: [
                {**row, "training": _training_data(row), "accuracy": _mean_sd(row, "accuracy"),
                 "precision": _mean_sd(row, "precision"), "auroc": _mean_sd(row, "auroc"),
                 "ensemble": _with_ci(row, "ensemble_auroc"), "versus": _with_ci(row, "versus_real")}
                for row in sorted((r for r in utility if r["class"] == name),
                                  key=lambda r: (r["size"], FRAMEWORK_ORDER[r["framework"]], r["ratio"] or 0))
            ]
            for name in classes
        } if utility else {},
        "learning_curve": learning_curve_figure(utility, classes),
        "samples": {
            name: {set_name: strip(paths) for set_name, paths in sets.items()}
            for name, sets in (data.get("samples") or {}).items()
        },
        "near_duplicates": {
            **near,
            "pairs": [{**p, "image": strip([str(release_root / p["a"]), str(release_root / p["b"])], 96)} for p in near["closest"]],
        },
        "memorisation": None if data.get("memorisation") is None else [
            {**p, "image": strip([p["synthetic"], p["match"]], 96)} for p in data["memorisation"][:PAIRS_SHOWN]
        ],
        "feature_neighbours": data.get("feature_neighbours") or {},
        "artifacts": {key: Path(path).name for key, path in summary["artifacts"].items()},
    }


def render_html(summary: dict, data: dict) -> str:
    """The report as a document (verdict first), for pytest-html's summary; self-contained."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("synthgate.reporting", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
    )
    return environment.get_template("report.html.j2").render(**document_context(summary, data))
