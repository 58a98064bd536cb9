"""The report's reading aids: the per-class summary, what was not checked, the policy, the
distribution numbers with their baselines, where synthetic and real differ at the
decision threshold, and the glossary.

Each function turns the summary and the gathered data into rows of text for the
template (:mod:`synthgate.reporting.html` assembles them); nothing here computes a metric.
"""

from __future__ import annotations

from synthgate.gate.criteria import FAMILIES, NOT_APPLICABLE_UNLABELLED, REGISTRY
from synthgate.gate.policy import applies_unlabelled
from synthgate.gate.verdicts import JUDGED_ON

MARKS = {"passed": "✓ pass", "failed": "✗ fail", "error": "✗ error", "skipped": "– not evaluated"}
# Column headings of the per-class summary, shortest that still says what is compared.
SHORT = {
    "pretrained_auroc": "AUROC on synthetic",
    "pretrained_accuracy": "accuracy on synthetic",
    "pretrained_precision": "precision on synthetic",
    "pretrained_recall": "recall on synthetic",
    "synthetic_minus_real_auroc": "AUROC synthetic − real",
    "train_on_synthetic_auroc": "trained on synthetic only: AUROC",
    "mix_minus_real_auroc": "real + synthetic vs real: Δ AUROC",
    "pretrain_minus_real_auroc": "synthetic pre-training vs real: Δ AUROC",
    "predicted_prevalence_difference": "called positive: |synthetic − real|",
}
SOURCES = {"policy": "the gate policy", "release": "release.toml (stricter than the policy)", "fixed": "fixed by synthgate"}
GLOSSARY = (
    ("AUROC", "area under the ROC curve: the chance that the model scores a randomly chosen image with the finding "
              "above one without it. 0.5 is guessing, 1.0 is perfect; it needs no decision threshold."),
    ("Δ AUROC", "a difference of two AUROCs (synthetic minus real, or a model trained with synthetic images minus "
                "one trained on real images only); 0 means no difference."),
    ("precision, recall (of the model)", "at a decision threshold: the share of images called positive that are positive "
                                         "(precision, which also depends on how common the finding is) and the share of "
                                         "positive images called positive (recall)."),
    ("decision threshold", "the score above which the model calls an image positive; chosen on a validation split of "
                           "the real reference training data (Youden's J), never on the images tested."),
    ("Frechet distance", "distance between the mean and covariance of the evaluating model's features of two image sets; "
                         "0 for identical statistics. Read against the real-vs-real baseline: two halves of the real "
                         "images are not at distance 0 either."),
    ("KID", "kernel inception distance: a kernel (polynomial) estimate of how far two sets of features are apart, "
            "unbiased for small sets; about 0 when both come from one distribution."),
    ("precision / recall / density / coverage (of the distribution)",
     "from nearest neighbours in feature space (Naeem et al. 2020): precision is the share of synthetic images that lie "
     "among real ones (realism), recall the share of real images that lie among synthetic ones (diversity), density "
     "how crowded real neighbourhoods are with synthetic images (about 1 when alike), coverage the share of real "
     "neighbourhoods that hold a synthetic image."),
    ("detectability AUROC", "AUROC of a classifier trained to tell synthetic from real images (cross-validated, by "
                            "patient): 0.5 means it cannot tell them apart."),
    ("pixel similarity", "correlation of two images' pixels after removing the mean image, allowing small shifts; 1 is a "
                         "copy. Used for near-duplicates within the release and for copies of real images."),
    ("real-vs-real baseline", "the same number computed between two disjoint, patient-wise halves of the real images: "
                              "what a perfect generator would reach."),
    ("CI", "95% confidence interval: the range of values compatible with the data; the gate may judge its lower or "
           "upper end instead of the point estimate."),
    ("patient bootstrap", "how the CIs are made: the test images are resampled by whole patients (images of one patient "
                          "together), so several images of one person do not count as independent evidence."),
)


def _number(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def bound_text(entry: dict) -> str:
    """'≥ 0.70 (lower CI bound)' or '≤ 4' for one criterion."""
    if entry.get("minimum") is not None:
        bound = f"≥ {entry['minimum']:g}"
    elif entry.get("maximum") is not None:
        bound = f"≤ {entry['maximum']:g}"
    else:
        return ""
    judged = entry.get("judged_on") or "point"
    return bound if judged == "point" else f"{bound} ({JUDGED_ON[judged]})"


def _cell(entry: dict | None) -> dict | None:
    if entry is None:
        return None
    value = _number(entry["value"]) if entry.get("value") is not None else ""
    ci = f"[{_number(entry['ci_low'])}, {_number(entry['ci_high'])}]" if entry.get("ci_low") is not None else ""
    return {"mark": MARKS.get(entry["outcome"], entry["outcome"]), "outcome": entry["outcome"], "value": value, "ci": ci,
            "bound": bound_text(entry)}


def class_summary(criteria: list[dict], classes: list[str], counts: dict) -> dict:
    """Rows: classes of interest first; columns: each per-class criterion required for some class, with a mark."""
    per_class = [c for c in criteria if c["kind"] == "threshold" and c.get("class")]
    names = [name for name in REGISTRY if any(c["name"] == name for c in per_class)]
    rows = []
    for name in classes:
        mine = {c["name"]: c for c in per_class if c["class"] == name}
        marks = [m["outcome"] for m in mine.values()]
        verdict = "failed" if any(o in ("failed", "error") for o in marks) else "passed" if marks and all(
            o == "passed" for o in marks) else "skipped" if marks else ""
        rows.append({"class": name, "positives": counts.get(name), "verdict": verdict,
                     "cells": [_cell(mine.get(n)) for n in names]})
    return {"columns": [SHORT.get(n, n.replace("_", " ")) for n in names], "rows": rows}


def release_level(criteria: list[dict]) -> list[dict]:
    """Release-wide criteria: file and leakage checks one line per family, the measured ones one line each."""
    rows = []
    for family in FAMILIES:
        mine = [c for c in criteria if c["family"] == family and not c.get("class")]
        if not mine:
            continue
        if all(c["kind"] == "check" and c.get("maximum") == 0 for c in mine):
            bad = [c for c in mine if c["outcome"] != "passed"]
            outcome = "failed" if any(c["outcome"] in ("failed", "error") for c in bad) else "skipped" if bad else "passed"
            text = (f"{len(mine) - len(bad)} of {len(mine)} checks found nothing"
                    + (": " + "; ".join(c["description"] for c in bad) if bad else ""))
            rows.append({"family": family, "what": FAMILIES[family], "value": text, "bound": "no offending file",
                         "mark": MARKS[outcome], "outcome": outcome})
            continue
        for c in mine:
            value = _number(c["value"]) if c.get("value") is not None else (c.get("message") or "").split("\n")[0]
            if c.get("ci_low") is not None:
                value += f" [{_number(c['ci_low'])}, {_number(c['ci_high'])}]"
            rows.append({"family": family, "what": c["description"], "value": value,
                         "baseline": c.get("baseline_text") or "", "bound": bound_text(c),
                         "mark": MARKS.get(c["outcome"], c["outcome"]), "outcome": c["outcome"]})
    return rows


def not_checked(summary: dict, classes: list[str]) -> dict:
    """Required criteria that were not evaluated (and why), and the criteria the policy does not require."""
    ran = {c["key"]: c for c in summary["criteria"]}
    unevaluated = []
    for key in summary["required"]:
        entry = ran.get(key)
        if entry is None:
            unevaluated.append({"key": key, "why": "did not run in this session"})
        elif entry["outcome"] == "skipped":
            unevaluated.append({"key": key, "why": entry.get("message") or "skipped"})
    required = {}
    for key in summary["required"]:
        name, _, rest = key.partition("[")
        required.setdefault(name, set()).add(rest[:-1] if rest else None)
    not_required, not_applicable = [], []
    unlabelled = (summary.get("release") or {}).get("labelled") is False
    for name, spec in REGISTRY.items():
        if unlabelled and not applies_unlabelled(spec):  # label-based: never required of an unlabelled release
            not_applicable.append({"name": name, "description": spec.description, "scope": NOT_APPLICABLE_UNLABELLED})
            continue
        if not spec.per_class:
            if name not in required:
                not_required.append({"name": name, "description": spec.description, "scope": "not required"})
            continue
        missing = [c for c in classes if c not in required.get(name, set())]
        if missing:
            scope = "not required for any class" if len(missing) == len(classes) else "not required for " + ", ".join(missing)
            not_required.append({"name": name, "description": spec.description, "scope": scope})
    return {"unevaluated": unevaluated, "not_required": not_required, "not_applicable": not_applicable}


def policy_view(policy: dict, criteria: list[dict]) -> dict:
    """The policy applied, and who set each bound."""
    sources = {}
    for c in criteria:
        sources.setdefault(c.get("source") or "policy", []).append(c)
    grid = policy.get("grid") or {}
    return {
        "file": policy.get("file", ""),
        "sha256": (policy.get("sha256") or "")[:16],
        "builtin": policy.get("builtin"),
        "named_classes": policy.get("named_classes") or [],
        "minimum_counts": f"{policy.get('min_positives')} positives and {policy.get('min_negatives')} negatives",
        "accept_missing": ", ".join(policy.get("accept_missing") or []) or "none",
        "grid": (f"{grid.get('mode')} mode; real sizes {', '.join(f'{s:g}' for s in grid.get('sizes', []))}; "
                 f"synthetic per real {', '.join(f'{r:g}' for r in grid.get('ratios', []))}; "
                 f"seeds {', '.join(str(s) for s in grid.get('seeds', []))}") if grid else "",
        "sources": [(SOURCES.get(source, source), len(entries)) for source, entries in sources.items()],
    }


def _pair(synthetic, real, digits: int = 3) -> dict:
    return {"synthetic": _number(synthetic, digits), "real": _number(real, digits)}


def _frechet_reading(f: dict) -> str:
    if f.get("halvings", 1) < 2:
        return f"ratio {_number(f['ratio'], 2)} (one halving of the real images); lower is closer"
    (low, high), (real_low, real_high) = f["ratio_interval"], f["real_interval"]
    return (f"ratio {_number(f['ratio'], 2)} [{_number(low, 2)}, {_number(high, 2)}] over {f['halvings']} halvings; "
            f"a real half spans {_number(real_low, 2)}-{_number(real_high, 2)}; lower is closer")


def distribution_rows(distribution: dict | None, classes: list[str]) -> list[dict]:
    """Each distribution number beside the same number for two halves of the real images."""
    if not distribution:
        return []
    rows = []
    frechet = distribution["frechet"]
    for scope in ["all", *[c for c in classes if c in frechet]]:
        f = frechet[scope]
        rows.append({"metric": "Frechet distance" + ("" if scope == "all" else f" ({scope} positives)"),
                     **_pair(f["synthetic"], f["real"], 2), "reading": _frechet_reading(f)})
    for scope, k in distribution["kid"].items():
        rows.append({"metric": "KID" + ("" if scope == "all" else f" ({scope})"),
                     "synthetic": f"{k['synthetic']['mean']:.4g} ± {k['synthetic']['sd']:.2g}",
                     "real": f"{k['real']['mean']:.4g} ± {k['real']['sd']:.2g}", "reading": "about 0 when alike"})
    readings = {"precision": "realism: higher is better", "recall": "diversity: higher is better",
                "density": "about 1 when alike", "coverage": "higher is better"}
    for key, c in distribution["prdc"].items():
        rows.append({"metric": f"{key} (distribution)", **_pair(c["synthetic"], c["real"]), "reading": readings.get(key, "")})
    d = distribution["detectability"]
    rows.append({"metric": "detectability AUROC",
                 "synthetic": f"{_number(d['synthetic']['value'])} [{_number(d['synthetic']['ci_low'])}, "
                              f"{_number(d['synthetic']['ci_high'])}]",
                 "real": f"{_number(d['real']['value'])} [{_number(d['real']['ci_low'])}, {_number(d['real']['ci_high'])}]",
                 "reading": "0.5: cannot be told apart"})
    dup = distribution["duplicate_fraction"]
    rows.append({"metric": "share of images with a near-duplicate", **_pair(dup["synthetic"], dup["real"]),
                 "reading": "lower is more diverse"})
    return rows


def _disjoint(a: dict, b: dict, metric: str) -> bool:
    lows, highs = (a.get(f"{metric}_ci_low"), b.get(f"{metric}_ci_low")), (a.get(f"{metric}_ci_high"), b.get(f"{metric}_ci_high"))
    if None in lows or None in highs:
        return False
    return highs[0] < lows[1] or highs[1] < lows[0]


def threshold_differences(pretrained: list[dict], classes: list[str]) -> list[dict]:
    """Classes whose synthetic precision or recall differs from real with non-overlapping CIs, with the prevalences."""
    found = []
    for name in classes:
        rows = {r["set"]: r for r in pretrained if r["class"] == name}
        real, synthetic = rows.get("real test"), rows.get("synthetic")
        if not real or not synthetic:
            continue
        for metric in ("precision", "recall"):
            if _disjoint(synthetic, real, metric):
                found.append({
                    "class": name, "metric": metric, "threshold": _number(real["threshold"]),
                    "synthetic": f"{_number(synthetic[metric])} [{_number(synthetic[f'{metric}_ci_low'])}, "
                                 f"{_number(synthetic[f'{metric}_ci_high'])}]",
                    "real": f"{_number(real[metric])} [{_number(real[f'{metric}_ci_low'])}, {_number(real[f'{metric}_ci_high'])}]",
                    "prevalence_synthetic": prevalence(synthetic), "prevalence_real": prevalence(real),
                })
    return found


def prevalence(row: dict) -> str:
    """'25% (150 of 600)': how common the finding is in one image set."""
    images, positives = row.get("images") or 0, row.get("positives") or 0
    return f"{100 * positives / images:.0f}% ({positives} of {images})" if images else "–"
