"""An unlabelled 512 px release end to end: gated at the model's 64 px on what needs no labels, and a
report that reads sensibly (no label tables, no "0 positives", the label-based criteria marked not
applicable, the predicted prevalence with its histogram). The verdicts of both unlabelled demo recipes
are checked with every other recipe's by test_demo_gate.py."""

from __future__ import annotations

import json
import re

import pytest

from synthgate.gate.criteria import NOT_APPLICABLE_UNLABELLED, REGISTRY
from synthgate.gate.policy import applies_unlabelled

CLASSES = ["soft tissue mass", "effusion", "cardiomegaly"]


@pytest.fixture(scope="module")
def unlabelled(run_gate, tmp_path_factory):
    out = tmp_path_factory.mktemp("unlabelled-report")
    result = run_gate("unlabelled-512", f"--gate-summary={out / 'u.json'}", f"--html={out / 'u.html'}",
                      "--self-contained-html")
    summary = json.loads((out / "u.json").read_text(encoding="utf-8"))
    return result, summary, (out / "u.html").read_text(encoding="utf-8")


def test_it_is_cleared_on_what_needs_no_labels(unlabelled):
    result, summary, _ = unlabelled
    assert result.returncode == 0, result.output
    assert summary["verdict"] == "cleared"
    assert summary["release"]["labelled"] is False
    judged = {c["name"] for c in summary["criteria"]}
    assert {"frechet_within_real_spread", "not_detectable_as_synthetic", "no_mode_collapse",
            "no_memorised_training_images", "no_copies_of_reference_images", "images_decode"} <= judged
    assert not {c["family"] for c in summary["criteria"]} & {"fidelity", "utility"}
    assert all(applies_unlabelled(REGISTRY[name]) for name in judged)
    prevalence = [c for c in summary["criteria"] if c["name"] == "predicted_prevalence_difference"]
    assert sorted(c["class"] for c in prevalence) == sorted(CLASSES)
    assert all(c["outcome"] == "passed" and c["positives"] is None for c in prevalence)
    assert all("generator source images" in c["baseline_text"] for c in prevalence)


def test_the_label_based_criteria_are_reported_not_applicable(unlabelled):
    result, summary, page = unlabelled
    not_applicable = summary["policy"]["not_applicable"]
    assert not_applicable and {e["reason"] for e in not_applicable} == {NOT_APPLICABLE_UNLABELLED}
    assert "class_minimum_counts" in {e["criterion"] for e in not_applicable}
    assert not {e["key"] for e in not_applicable} & set(summary["required"])
    assert NOT_APPLICABLE_UNLABELLED in result.output  # the terminal says so too
    assert "Not applicable: the release is unlabelled" in page


def test_the_model_saw_the_512_px_images_at_its_64_px_input(unlabelled):
    _, summary, page = unlabelled
    assert summary["resolution"]["delivered"] == [512, 512] and summary["resolution"]["model_input"] == 64
    assert "512×512" in page and "64×64 px (the evaluating model's input)" in page


def test_the_report_has_no_label_tables_and_shows_the_predicted_prevalence(unlabelled):
    _, summary, page = unlabelled
    text = re.sub(r"<[^>]+>", " ", page)
    assert "positives per class" not in text and "positives in the release" not in text
    assert not re.search(r"\b0 positives\b|\(0\)", text)
    assert 'id="sg-prevalence-table"' in page and "Scores, real vs synthetic" in page
    table = page[page.index('id="sg-prevalence-table"'):]
    table = table[:table.index("</table>")]
    assert all(name in table for name in CLASSES) and "labelled positive" not in table
    assert "real reference test: called positive" in table
    assert summary["tables"]["prevalence"]["cardiomegaly"]["histogram"]["synthetic"]


def test_a_lost_finding_is_blocked_when_its_labels_are_dropped(run_gate, gate_cache, tmp_path):
    """defect-finding-missing (a third of the mass images drawn without the mass) delivered without labels: the
    predicted prevalence must see what the fidelity checks saw. At a threshold set on another site's images the
    model called a mass in 99% of both sets and the release was cleared; at the source images' threshold it is not."""
    import shutil

    from synthgate.demo.world import POLICY_FILE, build_world

    world = build_world(gate_cache)
    for part in ("source", "reference", "releases/defect-finding-missing"):
        shutil.copytree(world / part, tmp_path / part, symlinks=True)
    release = tmp_path / "releases" / "defect-finding-missing"
    config = release / "release.toml"
    text = re.sub(r"(?m)^min_count = .*\n", "", config.read_text())
    config.write_text(text.replace("[release]\n", "[release]\nlabelled = false\n", 1))
    rows = [line.split(",") for line in (release / "manifest.csv").read_text().splitlines()]
    keep = [k for k, column in enumerate(rows[0]) if column not in CLASSES]
    (release / "manifest.csv").write_text("\n".join(",".join(row[k] for k in keep) for row in rows) + "\n")

    result = run_gate(str(release), f"--policy={POLICY_FILE}")
    assert result.returncode == 1 and result.summary["verdict"] == "blocked", result.output
    assert result.failed_checks() == {"predicted_prevalence_difference"}, result.output
    failed = [c for c in result.summary["criteria"] if c["outcome"] == "failed"]
    assert [c["class"] for c in failed] == ["soft tissue mass"], failed
