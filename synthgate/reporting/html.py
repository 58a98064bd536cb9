"""The HTML document of a gate run: formatting what was gathered and laying it out with the template.

The customer receives this page with the images, so everything the template shows
is formatted here; the template (``templates/report.html.j2``) only lays it out.
"""

from __future__ import annotations

from synthgate.measures.bootstrap import METRICS
from synthgate.reporting.figures import FRAMEWORK_ORDER, learning_curve_figure, prevalence_figure, roc_figure
from synthgate.reporting.prevalence import prevalence_view
from synthgate.reporting.sections import (
    GLOSSARY,
    MARKS,
    SOURCES,
    bound_text,
    class_summary,
    distribution_rows,
    not_checked,
    policy_view,
    prevalence,
    release_level,
    threshold_differences,
)
from synthgate.reporting.summary import class_order

LEADING = ["auroc"]  # threshold-free numbers lead; the threshold-dependent ones follow
METRIC_NAMES = {"accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "f1": "F1", "auroc": "AUROC"}


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


def criterion_title(entry: dict) -> str:
    """A criterion in plain words: 'soft tissue mass: AUROC of ...' or 'images decode'."""
    where = f"{entry['class']}: " if entry.get("class") else ""
    return where + entry["description"]


def _criterion_view(entry: dict) -> dict:
    """One row of the criteria table: what was measured, the rule it was held to, who set it, and at what resolution."""
    shown = entry.get("value")
    source = SOURCES.get(entry.get("source") or "policy", entry.get("source"))
    if entry["kind"] == "check" and entry.get("maximum") == 0:  # file and leakage checks: zero offences
        value = (entry["message"] or entry["outcome"]).splitlines()[0] if entry["outcome"] != "passed" else "none found"
        return {**entry, "title": criterion_title(entry), "value_text": value, "rule": "no offending file",
                "set_by": source, "mark": MARKS.get(entry["outcome"], entry["outcome"])}
    value = "–" if shown is None else _number(shown)
    ci = f"[{_number(entry['ci_low'])}, {_number(entry['ci_high'])}]" if entry.get("ci_low") is not None else ""
    return {**entry, "title": criterion_title(entry), "value_text": value, "ci": ci, "baseline": entry.get("baseline_text") or "",
            "rule": bound_text(entry), "set_by": source, "mark": MARKS.get(entry["outcome"], entry["outcome"])}


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
        ("reference train's images", card.get("reference_roles") or "not used in this run"),
    ]


def _pretrained_view(rows: list[dict], classes: list[str]) -> list[dict]:
    """Pretrained rows in the classes' order, real before synthetic, with prevalence and every metric's CI."""
    ordered = sorted(rows, key=lambda r: (classes.index(r["class"]) if r["class"] in classes else len(classes), r["set"]))
    return [{**row, "prevalence": prevalence(row), "share": prevalence(row).split(" ")[0], "cells": {m: _with_ci(row, m) for m in METRICS},
             "difference": _with_ci(row, "auroc_difference")} for row in ordered]


def document_context(summary: dict, data: dict) -> dict:
    """Everything the template shows, formatted: the template only lays it out."""
    release = data.get("release") or {}
    classes = summary.get("classes") or class_order(data)
    criteria = [_criterion_view(c) for c in summary["criteria"]]
    pretrained = data.get("pretrained") or []
    utility = data.get("utility") or []
    near = data.get("near_duplicates")
    samples = data.get("samples") or {}
    return {
        "summary": summary,
        "verdict": summary["verdict"],
        "failed": [c for c in criteria if c["outcome"] in ("failed", "error")],
        "not_evaluated": [c for c in criteria if c["outcome"] not in ("passed", "failed", "error")],
        "class_summary": class_summary(summary["criteria"], classes, release.get("class_counts") or {}),
        "release_level": release_level(summary["criteria"]),
        "not_checked": not_checked(summary, classes),
        "criteria": criteria,
        "policy": policy_view(data.get("policy") or {}, summary["criteria"]),
        "resolution": summary.get("resolution") or {},
        "release": release,
        "card": _card_view(data.get("model_card")),
        "metrics": [(m, METRIC_NAMES[m]) for m in LEADING + [m for m in METRICS if m not in LEADING]],
        "pretrained": _pretrained_view(pretrained, classes),
        "differences": threshold_differences(pretrained, classes),
        "roc": roc_figure(data.get("scores") or {}, classes) if pretrained else None,
        "utility": {
            name: [
                {**row, "training": _training_data(row), "accuracy": _mean_sd(row, "accuracy"),
                 "precision": _mean_sd(row, "precision"), "auroc": _mean_sd(row, "auroc"),
                 "seed_ci": _with_ci(row, "seed_auroc"), "versus": _with_ci(row, "versus_real")}
                for row in sorted((r for r in utility if r["class"] == name),
                                  key=lambda r: (r["size"], FRAMEWORK_ORDER[r["framework"]], r["ratio"] or 0))
            ]
            for name in classes
        } if utility else {},
        "learning_curve": learning_curve_figure(utility, classes),
        "unlabelled": release.get("labelled") is False,
        "predicted_prevalence": prevalence_view(data.get("prevalence"), classes, release.get("labelled") is not False),
        "prevalence_figure": prevalence_figure(data.get("prevalence") or {}, classes),
        "distribution": data.get("distribution"),
        "distribution_rows": distribution_rows(data.get("distribution"), classes),
        "samples": {name: samples[name] for name in classes if name in samples},
        "near_duplicates": None if near is None else {
            **near, "shown": [{**c, "image": image} for c, image in zip(near["clusters"], data.get("duplicate_strips") or [])],
        },
        "memorisation": None if data.get("memorisation") is None else [
            {**p, "image": image} for p, image in zip(data["memorisation"], data.get("memorisation_strips") or [])
        ],
        "feature_neighbours": data.get("feature_neighbours") or {},
        "glossary": GLOSSARY,
        "artifacts": summary["artifacts"],
    }


def render_html(summary: dict, data: dict) -> str:
    """The report as a document (verdict first), for pytest-html's summary; self-contained."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("synthgate.reporting", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
    )
    return environment.get_template("report.html.j2").render(**document_context(summary, data))
