"""The study's output: ``results.md`` (every table) and ``learning-curve.png``, from what the gate runs recorded.

``docs/real-data-study/results-64px.md`` and ``learning-curve-64px.png`` are these files of the full 64 px run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# MedMNIST v2 (Yang et al. 2023, Table 3), PneumoniaMNIST, official test split (234 normal / 390 pneumonia).
PUBLISHED = (("MedMNIST v2 ResNet-18 (28 px)", 0.944, 0.854), ("MedMNIST v2 ResNet-18 (224 px)", 0.956, 0.864),
             ("MedMNIST v2 ResNet-50 (224 px)", 0.962, 0.884))


def _f(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _g(value) -> str:
    return "n/a" if value is None else f"{value:g}"


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
                (row["n_real"], *_auroc(row), row["auroc_mean"], row["auroc_sd"]))
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
    policy = next((r["policy"] for r in results["releases"] if r.get("policy")), None)
    if policy:  # results saved before the gate policy have none
        grid = policy["grid"] or {}
        lines += [f"Gate policy: `{results.get('policy') or policy['file']}` (sha256 {policy['sha256'][:12]}): a judged number "
                  f"needs {policy['min_positives']} positives and {policy['min_negatives']} negatives; retraining grid "
                  f"{grid.get('mode')}, ratios {grid.get('ratios')}, sizes {grid.get('sizes')}, seeds {grid.get('seeds')}.", ""]

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
            if c.get("minimum") is not None:  # per-class criteria; the release-level limits follow
                lines.append(f"| {_label(c)} | {_ci(c['value'], c['ci_low'], c['ci_high'])} | {c['judged_on']} | "
                             f"{_f(c['minimum'])} | {c['outcome']} |")
        m = r.get("measurements", {})
        if "distribution" in m:
            d, limits = m["distribution"], m["distribution"]["limits"]
            fr = d["frechet"]["all"]
            if "real_interval" in fr:  # results saved since the limit is counted in real halves' spreads
                unit = fr["real_interval"][1] - 1  # how far above 1 a real half's ratio goes
                lines.append(f"| Frechet ratio to real-vs-real ({fr['synthetic']:.2f} vs {fr['baseline']:.2f}) minus 1, in "
                             f"units of a real half's ({unit:.2f}) | {(fr['ratio'] - 1) / unit:.2f} (ratio {fr['ratio']:.2f}) | "
                             f"point | at most {_g(limits.get('frechet_real_spreads_max'))} | "
                             f"{_outcome(r, 'frechet_within_real_spread')} |")
            else:
                lines.append(f"| Frechet distance / real-vs-real distance | {fr['ratio']:.2f} ({fr['synthetic']:.2f} vs "
                             f"{fr['baseline']:.2f}) | point | at most {_g(limits.get('frechet_ratio_max'))} | "
                             f"{_outcome(r, 'frechet_distance_near_real_baseline')} |")
            det, base = d["detectability"], d["baseline_detectability"]
            lines.append(f"| detectability AUROC (real vs real: {_ci(*base)}) | {_ci(*det)} | point | "
                         f"at most {_g(limits.get('detectability_auroc_max'))} | {_outcome(r, 'not_detectable_as_synthetic')} |")
            dup = d["duplicate_fraction"]
            lines.append(f"| fraction with a near-duplicate in the release (real: {dup['baseline']:.3f}) | {dup['synthetic']:.3f} | "
                         f"point | at most {_g(limits.get('duplicate_fraction_max'))} | {_outcome(r, 'no_mode_collapse')} |")
        if "privacy" in m:
            p = m["privacy"]
            checks = {"generator source images": "no_memorised_training_images", "reference images": "no_copies_of_reference_images"}
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
                         f"{_ci(*_auroc(row))} |")
        lines.append("")
    lines += ["## Learning curve (AUROC on real test vs real training images)", "", "![learning curve](learning-curve.png)", ""]
    for key, points in curve.items():
        lines.append(f"- {key}: " + "; ".join(f"{p['n_real']}: {_ci(p['auroc'], *p['ci'])}" for p in points))
    return "\n".join(lines) + "\n"


def _auroc(row: dict) -> tuple:
    """A utility row's AUROC with its CI; results saved before the seed intervals call it ``ensemble_auroc``."""
    name = "seed_auroc" if "seed_auroc" in row else "ensemble_auroc"
    return row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"]


def _label(criterion: dict) -> str:
    """``pretrained_auroc[pneumonia]``; results saved before the criteria registry have only the test id."""
    return criterion.get("key") or criterion["id"].split("::")[-1]


def _name(criterion: dict) -> str:
    """The registry name (``pretrained_auroc``), also of results saved before the registry (``test_pretrained_auroc``)."""
    return criterion.get("name") or criterion["id"].split("::")[-1].split("[")[0].removeprefix("test_")


def _outcome(run: dict, check: str) -> str:
    return next((c["outcome"] for c in run["criteria"] if _name(c) == check), "")
