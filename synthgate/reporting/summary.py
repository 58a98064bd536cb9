"""The machine-readable summary and the files beside the report (CSV tables, scores).

Nothing here imports pytest: the recorder hands in the outcomes it collected. No
machine path leaves here: files are named relative to the release, a named data set
or the summary's folder (:mod:`synthgate.reporting.paths`).
"""

from __future__ import annotations

import csv
import os
from datetime import UTC, datetime
from pathlib import Path

from synthgate import __version__
from synthgate.gate.criteria import FAMILIES
from synthgate.gate.verdicts import verdict as gate_verdict
from synthgate.reporting.paths import scrub

SUMMARY_SCHEMA_VERSION = 3
# Every criterion entry of the summary has these keys (None where they do not apply or were not measured).
CRITERION_FIELDS = ("id", "key", "name", "kind", "family", "class", "description", "direction", "value", "ci_low",
                    "ci_high", "n", "positives", "negatives", "minimum", "maximum", "source", "baseline", "baseline_text",
                    "judged_on", "judged_value", "problem", "note", "details_count", "details", "resolution", "outcome",
                    "message")
# What each check looked at: files as delivered, the model's input, or the pixel comparisons' size.
MODEL_FEATURES = ("frechet_distance_near_real_baseline", "frechet_within_real_spread", "not_detectable_as_synthetic",
                  "predicted_prevalence_difference")
PIXEL_SIMILARITY = {"no_mode_collapse": "duplicate", "no_memorised_training_images": "memorisation",
                    "no_copies_of_reference_images": "memorisation"}


def class_order(data: dict) -> list[str]:
    """The classes of interest first: those the policy names explicitly, then the rest in the release's order."""
    classes = [c["name"] for c in (data.get("release") or {}).get("classes", [])]
    named = [c for c in (data.get("policy") or {}).get("named_classes", []) if c in classes]
    return named + [c for c in classes if c not in named]


def resolution_of(name: str, family: str, resolution: dict) -> str:
    """The size the images had when a criterion was measured, in words."""
    width, height = resolution.get("delivered") or (None, None)
    model = resolution.get("model_input")
    model_text = f"{model}×{model} px (model input)" if model else "the model's input size (model not loaded)"
    if name in PIXEL_SIMILARITY:
        kind = PIXEL_SIMILARITY[name]
        exact = resolution.get(f"{kind}_resolution", resolution["pixel"])
        return (f"{exact}×{exact} px (pixel similarity of the candidates found at 32 px, shifts up to "
                f"{resolution[f'{kind}_max_shift']} px at 64 px)")
    if name in MODEL_FEATURES or family in ("fidelity", "utility"):
        return model_text
    if name == "model_never_saw_generator_source":
        return "model card (data-set names, training-image fingerprints)"
    if name == "reference_splits_share_no_patients":
        return "patient ids"
    if family == "leakage":
        return f"file and pixel hashes; near-duplicates at {resolution['pixel']}×{resolution['pixel']} px"
    return f"files as delivered ({width}×{height} px)"


def _order(classes: list[str]):
    """Family by family, criterion by criterion, classes of interest first (:func:`class_order`)."""
    families = list(FAMILIES)

    def key(entry: dict) -> tuple:
        family = families.index(entry["family"]) if entry["family"] in FAMILIES else len(families)
        where = classes.index(entry["class"]) if entry["class"] in classes else -1
        return family, entry["name"] or "", where, entry["id"]

    return key


def build_summary(data: dict, criteria: list[dict], required: list[str], narrowed: dict, artifacts: dict) -> dict:
    """The machine-readable summary (docs/summary-schema.md): the verdict against what was required."""
    classes = class_order(data)
    resolution = data.get("resolution") or {}
    criteria = sorted((dict.fromkeys(CRITERION_FIELDS) | entry for entry in criteria), key=_order(classes))
    for entry in criteria:
        entry["resolution"] = resolution_of(entry["name"], entry["family"], resolution) if resolution else None
    outcomes: dict[str, list[str]] = {}
    for entry in criteria:
        outcomes.setdefault(entry["key"], []).append(entry["outcome"])
    verdict, reasons = gate_verdict(required, outcomes, narrowed["reasons"])
    counts = {outcome: sum(c["outcome"] == outcome for c in criteria) for outcome in ("passed", "failed", "error", "skipped")}
    summary = {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "tool": {"name": "synthgate", "version": __version__},
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "verdict": verdict,
        "verdict_reasons": reasons,
        "counts": {**counts, "total": len(criteria)},
        "selection": {"complete": not narrowed["reasons"], **narrowed},
        "required": required,
        "policy": data.get("policy"),
        "release": data.get("release"),
        "classes": classes,
        "resolution": data.get("resolution"),
        "model_card": data.get("model_card"),
        "versions": versions(),
        "criteria": criteria,
        "tables": {"pretrained": data.get("pretrained"), "utility": data.get("utility"),
                   "prevalence": data.get("prevalence")},
        "distribution": data.get("distribution"),
        "near_duplicates": data.get("near_duplicates"),
        "memorisation": data.get("memorisation"),
        "feature_neighbours": data.get("feature_neighbours"),
        "clearance": None,
        "artifacts": relative_artifacts(artifacts),
    }
    return scrub(summary, data.get("path_names") or [])


def relative_artifacts(artifacts: dict[str, str]) -> dict[str, str]:
    """The files this run wrote, each named by :func:`portable_file`."""
    return {key: portable_file(path) for key, path in artifacts.items()}


def portable_file(path) -> str:
    """A file this run wrote: relative to the folder the gate ran in when inside it, else its name (never a machine path)."""
    relative = Path(os.path.relpath(Path(path).resolve(), Path.cwd().resolve())).as_posix()
    return Path(path).name if relative.startswith("../") else relative


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
    header = ["set", "image", "sha256", "patient", *[f"label:{k}" for k in label_keys],
              *[f"pretrained:{k}" for k in pretrained_keys], *[f"utility:{k}" for k in utility_keys]]
    rows = []
    for set_name, entry in scores.items():
        columns = [entry["labels"][k] for k in label_keys]
        columns += [entry.get("pretrained", {}).get(k, [None] * len(entry["images"])) for k in pretrained_keys]
        columns += [entry.get("utility", {}).get(k, [None] * len(entry["images"])) for k in utility_keys]
        for i, (image, digest, patient) in enumerate(zip(entry["images"], entry["sha256"], entry["patients"])):
            rows.append([set_name, image, digest, patient, *[column[i] for column in columns]])
    return header, rows


def _write_csv(path: Path, header: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
