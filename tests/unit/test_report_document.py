"""The report's reading aids without a gate run: files named without machine paths, the
classes of interest first, significant precision/recall differences only where the CIs
part, what was not checked, and a document rendered from hand-made results."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from synthgate.reporting.html import render_html
from synthgate.reporting.paths import Places, scrub
from synthgate.reporting.sections import not_checked, threshold_differences
from synthgate.reporting.summary import build_summary, class_order, portable_file


def _release(tmp_path: Path):
    ref = lambda name: SimpleNamespace(path=tmp_path / "data" / name)  # noqa: E731
    return SimpleNamespace(root=tmp_path / "releases" / "april", reference=SimpleNamespace(train=ref("train"), test=ref("test")),
                           source_images=SimpleNamespace(path=tmp_path / "data" / "source"))


def test_files_are_named_inside_the_release_or_their_data_set(tmp_path):
    places = Places(_release(tmp_path))
    assert places.name(tmp_path / "releases/april/images/001.png") == "images/001.png"
    assert places.name(tmp_path / "data/test/images/9.png") == "reference test: images/9.png"
    assert places.name(tmp_path / "data/source/a/b.png") == "generator source: a/b.png"
    assert places.name("/somewhere/else/x.png") == "x.png"
    assert places.folder(tmp_path / "data/train") == "../../data/train"
    assert places.file("reference test: images/9.png") == (tmp_path / "data/test/images/9.png").resolve()
    message = f"{tmp_path}/releases/april/images/1.png is like {tmp_path}/data/train/7.png; see {tmp_path}/releases/april."
    cleaned = scrub({"m": [message]}, places.replacements())["m"][0]
    assert str(tmp_path) not in cleaned
    assert cleaned == "images/1.png is like reference train: 7.png; see the release folder."


def test_report_files_outside_the_working_folder_are_named_not_located(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert portable_file(tmp_path / "reports" / "april.json") == "reports/april.json"
    assert portable_file("/elsewhere/april.html") == "april.html"


def test_classes_the_policy_names_come_first():
    data = {"release": {"classes": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}, "policy": {"named_classes": ["c"]}}
    assert class_order(data) == ["c", "a", "b"]


def _row(set_name, precision, recall, images=100, positives=25):
    row = {"class": "mass", "set": set_name, "images": images, "positives": positives, "threshold": 0.4}
    for metric, (value, low, high) in (("precision", precision), ("recall", recall)):
        row.update({metric: value, f"{metric}_ci_low": low, f"{metric}_ci_high": high})
    return row


def test_precision_and_recall_differences_are_shown_only_where_the_intervals_part():
    overlapping = [_row("real test", (0.8, 0.7, 0.9), (0.8, 0.7, 0.9)), _row("synthetic", (0.75, 0.65, 0.85), (0.8, 0.7, 0.9))]
    assert threshold_differences(overlapping, ["mass"]) == []
    parted = [_row("real test", (0.8, 0.7, 0.9), (0.8, 0.7, 0.9)),
              _row("synthetic", (0.5, 0.4, 0.6), (0.8, 0.7, 0.9), images=200, positives=100)]
    (found,) = threshold_differences(parted, ["mass"])
    assert found["metric"] == "precision" and found["threshold"] == "0.400"
    assert found["prevalence_synthetic"] == "50% (100 of 200)" and found["prevalence_real"] == "25% (25 of 100)"


def _criterion(key, name, outcome="passed", cls=None, **extra):
    return {"id": f"checks::{key}", "key": key, "name": name, "kind": "threshold" if cls else "check",
            "family": "fidelity" if cls else "integrity", "class": cls, "description": name.replace("_", " "),
            "outcome": outcome, "message": "", **extra}


def _summary_and_data():
    data = {
        "release": {"name": "april", "classes": [{"name": "a", "model_output": "A", "min_count": 1},
                                                 {"name": "b", "model_output": "B", "min_count": 1}],
                    "class_counts": {"a": 40, "b": 30}, "statistics": {"n_boot": 200, "seed": 0}, "images": 70,
                    "content_hash": "cd" * 32, "config_hash": "ef" * 32, "generator": "g", "source_datasets": ["s"]},
        "policy": {"file": "gate-policy.toml", "builtin": False, "sha256": "ab" * 32, "named_classes": ["b"],
                   "min_positives": 20, "min_negatives": 20, "accept_missing": [], "grid": {}},
        "resolution": {"delivered": [512, 512], "model_input": 224, "pixel": 64, "duplicate_max_shift": 4,
                       "memorisation_max_shift": 4},
        "path_names": [["/machine/cache/releases/april", ""]],
    }
    criteria = [
        _criterion("images_decode", "images_decode", maximum=0.0, source="fixed"),
        _criterion("pretrained_auroc[a]", "pretrained_auroc", cls="a", value=0.9, ci_low=0.85, ci_high=0.95, minimum=0.7,
                   judged_on="ci_low", source="policy"),
        _criterion("pretrained_auroc[b]", "pretrained_auroc", "skipped", cls="b", source="policy",
                   message="not evaluated: /machine/cache/releases/april/images/x.png is broken"),
    ]
    required = [c["key"] for c in criteria] + ["mix_minus_real_auroc[a]"]
    summary = build_summary(data, criteria, required, {"reasons": [], "deliberate": False}, {"html": "/elsewhere/april.html"})
    summary["versions"] = {}
    return summary, data


def test_the_summary_orders_criteria_by_the_classes_of_interest_and_names_no_machine_path():
    summary, _ = _summary_and_data()
    assert summary["classes"] == ["b", "a"]
    assert [c["key"] for c in summary["criteria"]][1:] == ["pretrained_auroc[b]", "pretrained_auroc[a]"]
    assert summary["criteria"][1]["message"] == "not evaluated: images/x.png is broken"
    assert summary["criteria"][1]["resolution"] == "224×224 px (model input)"
    assert summary["criteria"][0]["resolution"] == "files as delivered (512×512 px)"
    assert summary["artifacts"] == {"html": "april.html"}
    assert "/machine" not in str(summary)


def test_what_was_not_checked_lists_unevaluated_and_unrequired_criteria():
    summary, _ = _summary_and_data()
    listed = not_checked(summary, summary["classes"])
    assert [u["key"] for u in listed["unevaluated"]] == ["pretrained_auroc[b]", "mix_minus_real_auroc[a]"]
    scopes = {n["name"]: n["scope"] for n in listed["not_required"]}
    assert scopes["pretrained_accuracy"] == "not required for any class"
    assert scopes["mix_minus_real_auroc"] == "not required for b"
    assert scopes["no_mode_collapse"] == "not required"
    assert "pretrained_auroc" not in scopes


def test_the_document_leads_with_the_verdict_and_the_per_class_summary():
    summary, data = _summary_and_data()
    page = render_html(summary, data)
    assert page.index("sg-verdict-word") < page.index('id="sg-class-table"') < page.index('id="sg-criteria-table"')
    table = page[page.index('id="sg-class-table"'):]
    assert table.index("<th>b") < table.index("<th>a"), "the class the policy names comes first"
    assert "✓ pass" in table and "– not evaluated" in table and "required ≥ 0.7 (lower CI bound)" in table
    assert "gate-policy.toml" in page and "abababababababab" in page and "not built in" in page
    assert "224×224 px" in page and "<dt>KID</dt>" in page
    assert "Required but not evaluated" in page and "mix_minus_real_auroc[a]" in page
    assert "/machine" not in page
