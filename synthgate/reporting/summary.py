"""The machine-readable summary and the files beside the report (CSV tables, scores).

Nothing here imports pytest: the recorder hands in the outcomes it collected.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from synthgate import __version__
from synthgate.gate.criteria import FAMILIES
from synthgate.gate.verdicts import verdict as gate_verdict

SUMMARY_SCHEMA_VERSION = 2
# Every criterion entry of the summary has these keys (None where they do not apply or were not measured).
CRITERION_FIELDS = ("id", "key", "name", "kind", "family", "class", "description", "direction", "value", "ci_low",
                    "ci_high", "n", "positives", "negatives", "minimum", "maximum", "source", "baseline", "baseline_text",
                    "judged_on", "judged_value", "problem", "note", "details_count", "details", "outcome", "message")


def _order(classes: list[str]):
    """Family by family, criterion by criterion, classes in the release's order (the one that matters most first)."""
    families = list(FAMILIES)

    def key(entry: dict) -> tuple:
        family = families.index(entry["family"]) if entry["family"] in FAMILIES else len(families)
        where = classes.index(entry["class"]) if entry["class"] in classes else -1
        return family, entry["name"] or "", where, entry["id"]

    return key


def build_summary(data: dict, criteria: list[dict], required: list[str], narrowed: dict, artifacts: dict) -> dict:
    """The machine-readable summary (docs/summary-schema.md): the verdict against what was required."""
    classes = [c["name"] for c in (data.get("release") or {}).get("classes", [])]
    criteria = sorted((dict.fromkeys(CRITERION_FIELDS) | entry for entry in criteria), key=_order(classes))
    outcomes: dict[str, list[str]] = {}
    for entry in criteria:
        outcomes.setdefault(entry["key"], []).append(entry["outcome"])
    verdict, reasons = gate_verdict(required, outcomes, narrowed["reasons"])
    counts = {outcome: sum(c["outcome"] == outcome for c in criteria) for outcome in ("passed", "failed", "error", "skipped")}
    return {
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
