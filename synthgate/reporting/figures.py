"""Figures of the report as PNG data URIs: ROC curves, learning curves, thumbnail strips.

Matplotlib's object API (no pyplot, no global backend state); images are downsized
thumbnails, never the full-resolution images.
"""

from __future__ import annotations

import base64
import io

import numpy as np

FRAMEWORK_ORDER = {"R": 0, "R+S": 1, "S": 2, "S->R": 3}


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


def prevalence_figure(prevalence: dict, classes: list[str]) -> str | None:
    """Per class: histograms of the model's score on real test and synthetic images, and the decision threshold.

    ``prevalence`` is the gathered block (``reporting.prevalence.gather_prevalence``): bin
    counts per set, drawn as densities so sets of different sizes compare.
    """
    shown = [name for name in classes if (prevalence or {}).get(name, {}).get("histogram")]
    if not shown:
        return None
    figure, axes = _figure(len(shown))
    for axis, name in zip(axes, shown):
        entry = prevalence[name]
        edges = np.asarray(entry["histogram"]["edges"])
        names = {"real": entry.get("real_set") or "real", "synthetic": "synthetic", "real test": "real reference test"}
        shares = {"real": entry.get("real"), "synthetic": entry.get("synthetic"), "real test": entry.get("reference_test")}
        for key, colour, style in (("real", "#1f4e79", "-"), ("synthetic", "#c55a11", "-"), ("real test", "#1f4e79", ":")):
            counts = np.asarray(entry["histogram"].get(key) or [], dtype=float)
            if counts.sum():
                share = (shares[key] or {}).get("value")
                label = f"{names[key]} ({counts.sum():.0f}" + (f", {share:.0%} called positive)" if share is not None
                                                               else ")")
                axis.stairs(counts / counts.sum(), edges, color=colour, linestyle=style, linewidth=1.5, label=label)
        if entry.get("threshold") is not None:
            axis.axvline(entry["threshold"], color="#555555", linestyle="--", linewidth=1, label="threshold (real validation)")
        axis.set(title=name, xlabel="model score", ylabel="share of images (log scale)", xlim=(0, 1), yscale="log")
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2))  # below: scores pile up at 0 and 1
    return _png_uri(figure)
