"""The gate's report as its readers meet it: a document with the verdict first, tables a
reviewer can recompute from the saved scores, a JSON summary that follows its documented
schema, JUnit XML for CI, partial and parallel runs, and the page as a browser shows it."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

from synthgate.gate.criteria import FAMILIES
from synthgate.reporting.summary import CRITERION_FIELDS
from tests.conftest import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOT = REPO / "reports" / "demo-screenshot.png"  # kept as a CI artifact


@pytest.fixture(scope="module")
def demo_report(run_gate, tmp_path_factory):
    """One full gate run of the demo with every report file, shared by the tests here."""
    out = tmp_path_factory.mktemp("report")
    result = run_gate("demo", f"--html={out / 'demo.html'}", "--self-contained-html", f"--junitxml={out / 'demo.xml'}")
    assert result.returncode == 0, result.output
    return result


def _read_csv(path: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_report_reads_as_a_document_with_the_verdict_first(demo_report):
    page = Path(demo_report.summary["artifacts"]["html"]).read_text(encoding="utf-8")
    sections = ['class="sg-verdict-word">CLEARED', 'id="sg-criteria"', 'id="sg-release"', 'id="sg-model"',
                'id="sg-pretrained"', 'id="sg-utility"', 'id="sg-samples"', 'id="sg-duplicates"', 'id="results-table"']
    positions = [page.index(marker) for marker in sections]
    assert positions == sorted(positions)
    assert demo_report.summary["release"]["content_hash"] in page
    assert "Evaluating model" in page and "phantom-site-b" in page
    # ROC curves, learning curves, and a strip of real and synthetic samples per class
    assert page.count('src="data:image/png;base64,') >= 2 + 2 * 3
    assert not re.search(r'src="https?:|<link[^>]+href="https?:', page), "the report must be self-contained"


def test_summary_follows_the_documented_schema(demo_report):
    summary = demo_report.summary
    schema = (REPO / "docs" / "summary-schema.md").read_text(encoding="utf-8")
    assert summary["schema_version"] == 2 and summary["verdict"] == "cleared"
    for key in [*summary, *CRITERION_FIELDS]:
        assert f"`{key}`" in schema, f"{key} is not documented in docs/summary-schema.md"
    for entry in summary["criteria"]:
        assert list(entry) == list(CRITERION_FIELDS) and entry["outcome"] == "passed"
        assert entry["family"] in FAMILIES
        if entry["kind"] == "threshold":
            assert entry["class"] in summary["release"]["class_counts"]
            assert entry["judged_value"] >= entry["minimum"]
    assert summary["clearance"]["written"] and Path(summary["clearance"]["path"]).is_file()


def _bootstrap_auroc_ci(labels, scores, patients, rng, n_boot: int = 1000) -> tuple[float, float]:
    """A reviewer's own percentile bootstrap over patients (images without one are their own), with scikit-learn."""
    groups = [p or f"image-{i}" for i, p in enumerate(patients)]
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    clusters = list(members.values())
    values = []
    while len(values) < n_boot:
        chosen = rng.integers(len(clusters), size=len(clusters))
        index = np.concatenate([clusters[c] for c in chosen])
        if 0 < labels[index].sum() < len(index):
            values.append(roc_auc_score(labels[index], scores[index]))
    return tuple(np.quantile(values, [0.025, 0.975]))


def test_tables_can_be_recomputed_from_the_saved_scores(demo_report):
    artifacts = demo_report.summary["artifacts"]
    scores = _read_csv(artifacts["scores_csv"])
    rng = np.random.default_rng(2024)
    for row in _read_csv(artifacts["pretrained_csv"]):
        images = [s for s in scores if s["set"] == row["set"]]
        labels = np.array([int(s[f"label:{row['class']}"]) for s in images])
        values = np.array([float(s[f"pretrained:{row['class']}"]) for s in images])
        predicted = values >= float(row["threshold"])
        assert roc_auc_score(labels, values) == pytest.approx(float(row["auroc"]), abs=1e-9)
        assert accuracy_score(labels, predicted) == pytest.approx(float(row["accuracy"]), abs=1e-9)
        assert precision_score(labels, predicted) == pytest.approx(float(row["precision"]), abs=1e-9)
        assert recall_score(labels, predicted) == pytest.approx(float(row["recall"]), abs=1e-9)
        low, high = _bootstrap_auroc_ci(labels, values, [s["patient"] for s in images], rng)
        assert low == pytest.approx(float(row["auroc_ci_low"]), abs=0.02)
        assert high == pytest.approx(float(row["auroc_ci_high"]), abs=0.02)
    test_images = [s for s in scores if s["set"] == "real test"]
    for row in _read_csv(artifacts["utility_csv"]):
        if row["unavailable"]:
            continue
        labels = np.array([int(s[f"label:{row['class']}"]) for s in test_images])
        per_seed = [roc_auc_score(labels, [float(s[f"utility:{row['cell']}:{row['class']}:seed{seed}"]) for s in test_images])
                    for seed in (0, 1, 2)]
        assert np.mean(per_seed) == pytest.approx(float(row["seed_auroc"]), abs=1e-9)


def test_junit_xml_has_every_criterion_with_its_numbers(demo_report):
    cases = list(ET.parse(demo_report.summary["artifacts"]["junitxml"]).getroot().iter("testcase"))
    assert len(cases) == len(demo_report.summary["criteria"])
    assert not any(case.find("failure") is not None or case.find("error") is not None for case in cases)
    properties = [{p.get("name"): p.get("value") for p in case.iter("property")} for case in cases]
    thresholds = [p for p in properties if "minimum" in p]
    assert thresholds and all({"family", "class", "value", "judged_on"} <= set(p) for p in thresholds)


def test_a_selection_by_marker_is_incomplete_and_writes_no_record(run_gate):
    result = run_gate("demo", "-m", "integrity")
    assert result.returncode == 0, result.output
    summary = result.summary
    assert summary["verdict"] == "incomplete"
    assert {c["family"] for c in summary["criteria"]} == {"integrity"}
    assert not summary["selection"]["complete"] and "-m 'integrity'" in summary["selection"]["reasons"][0]
    assert not summary["clearance"]["written"] and "clearance" not in summary["artifacts"]
    assert not Path(summary["artifacts"]["summary"]).with_suffix(".clearance.json").exists()
    assert "no clearance record: the verdict is incomplete" in result.output


def test_xdist_gives_the_same_verdicts_as_a_serial_run(run_gate, quick_demo_policy):
    """Both under the demo policy with a full-size-only grid: the same comparison in a fraction of the time."""
    small_grid = (f"--policy={quick_demo_policy}",)
    serial, parallel = run_gate("demo", *small_grid), run_gate("demo", *small_grid, "-n", "2")
    assert parallel.returncode == serial.returncode == 0, parallel.output

    def outcomes(summary):
        return {c["id"]: c["outcome"] for c in summary["criteria"]}

    def values(summary):
        return {c["id"]: c["value"] for c in summary["criteria"] if c["kind"] == "threshold"}

    assert parallel.summary["verdict"] == serial.summary["verdict"] == "cleared"
    assert outcomes(parallel.summary) == outcomes(serial.summary)
    assert values(parallel.summary) == pytest.approx(values(serial.summary))
    assert parallel.summary["release"] == serial.summary["release"]
    assert parallel.summary["tables"]["pretrained"] == serial.summary["tables"]["pretrained"]
    assert parallel.summary["clearance"]["written"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: run scripts/browser-check.sh --install (CI does)")
def test_report_in_a_browser(demo_report, tmp_path):
    """What a reader sees once pytest-html's scripts ran; the screenshot is kept for a person to look at."""
    page = Path(demo_report.summary["artifacts"]["html"]).resolve().as_uri()
    flags = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True, timeout=120, check=True).stdout
    assert re.search(r'class="sg-verdict-word">\s*CLEARED', dom)
    assert re.search(r"<table>(?:(?!</table>).)*<th[^>]*>soft tissue mass</th>", dom, re.S)
    assert re.search(r'<img[^>]+src="data:image/png;base64,', dom)
    assert 'class="results-table-row' in dom, "pytest-html's script did not render the test log"
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1280,2400", page],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT)
