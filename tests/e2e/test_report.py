"""The gate's report as its readers meet it: a document with the verdict first, tables a
reviewer can recompute from the saved scores, a JSON summary that follows its documented
schema, JUnit XML for CI, partial and parallel runs, and the page as a browser shows it."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
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
SCREENSHOTS = REPO / "reports"  # <release>-screenshot.png, kept as CI artifacts
DATA_URI = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")
VIEWPORT = 1280


@dataclass
class Report:
    """A gate run's report files, all in one folder (the summary names them relative to it)."""

    returncode: int
    output: str
    summary: dict
    folder: Path

    def file(self, key: str) -> Path:
        return self.folder / Path(self.summary["artifacts"][key]).name


def _report(run_gate, tmp_path_factory, release: str, *args: str) -> Report:
    """Gate ``release`` writing the summary, HTML, JUnit XML, tables and clearance record into one folder."""
    out = tmp_path_factory.mktemp(f"report-{release}")
    result = run_gate(release, f"--gate-summary={out / f'{release}.json'}", f"--html={out / f'{release}.html'}",
                      "--self-contained-html", f"--junitxml={out / f'{release}.xml'}", *args)
    summary_file = out / f"{release}.json"
    assert summary_file.is_file(), result.output
    return Report(result.returncode, result.output, json.loads(summary_file.read_text(encoding="utf-8")), out)


@pytest.fixture(scope="module")
def demo_report(run_gate, tmp_path_factory):
    """One full gate run of the demo with every report file, shared by the tests here."""
    report = _report(run_gate, tmp_path_factory, "demo")
    assert report.returncode == 0, report.output
    return report


@pytest.fixture(scope="module")
def defect_report(run_gate, tmp_path_factory, quick_demo_policy):
    """A release the gate must block (labels shuffled: fidelity fails), under the demo policy with a small grid."""
    report = _report(run_gate, tmp_path_factory, "defect-shuffled-labels", f"--policy={quick_demo_policy}")
    assert report.returncode == 1 and report.summary["verdict"] == "blocked", report.output
    return report


def _read_csv(path: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_report_reads_as_a_document_with_the_verdict_first(demo_report):
    from PIL import Image

    page = demo_report.file("html").read_text(encoding="utf-8")
    summary = demo_report.summary
    sections = ['class="sg-verdict-word">CLEARED', 'id="sg-classes"', 'id="sg-not-checked"', 'id="sg-policy"',
                'id="sg-criteria"', 'id="sg-release"', 'id="sg-model"', 'id="sg-pretrained"', 'id="sg-utility"',
                'id="sg-distribution"', 'id="sg-duplicates"', 'id="sg-samples"', 'id="sg-memorisation"',
                'id="sg-glossary"', 'id="results-table"']
    positions = [page.index(marker) for marker in sections]
    assert positions == sorted(positions)
    assert summary["release"]["content_hash"] in page
    assert "Evaluating model" in page and "phantom-site-b" in page
    # the per-class summary: classes of interest first, a mark per criterion
    class_table = page[page.index('id="sg-class-table"'):page.index("</table>", page.index('id="sg-class-table"'))]
    order = [class_table.index(f"<th>{name}") for name in summary["classes"]]
    assert order == sorted(order) and class_table.count("✓ pass") == sum(c["kind"] == "threshold" for c in summary["criteria"])
    # the policy, each bound's source, the resolution, and every number the distribution section promises
    assert summary["policy"]["sha256"][:16] in page and "set by" in page and "the gate policy" in page
    assert f"{summary['resolution']['model_input']}×{summary['resolution']['model_input']} px" in page
    for words in ("KID", "coverage (distribution)", "density (distribution)", "Frechet distance (", "detectability AUROC"):
        assert words in page, words
    for term in ("AUROC", "Frechet distance", "KID", "detectability AUROC", "pixel similarity", "CI", "patient bootstrap"):
        assert f"<dt>{term}</dt>" in page, term
    assert "Not required by the policy" in page and "pretrained_accuracy" in page
    assert "threshold chosen on the real validation split" in page and "prevalence" in page
    # the near-duplicate section uses the gated pixel similarity, and lists groups only above the real baseline
    near = summary["near_duplicates"]
    assert near["similarity"] == 0.95 and near["above_real"] == (near["fraction"] > near["real_fraction"])
    assert ("No more near-duplicates than among real images" in page) == (not near["above_real"])
    # ROC curves, learning curves, and a strip of real and synthetic samples per class: every one decodes
    images = DATA_URI.findall(page)
    assert len(images) >= 2 + 2 * 3
    for encoded in images:
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
            image.load()
            assert image.width > 0 and image.height > 0
    assert not re.search(r'src="https?:|<link[^>]+href="https?:', page), "the report must be self-contained"


def _machine_paths(gate_cache: Path) -> list[str]:
    """Folders of the machine that ran the gate: none may appear in what the customer receives."""
    folders = {str(gate_cache), str(gate_cache.resolve()), tempfile.gettempdir(), str(Path.home()), str(REPO)}
    return sorted(f for f in folders if len(f) > 1)


def test_no_report_file_names_a_machine_path(demo_report, gate_cache):
    """HTML, JSON, CSV, JUnit XML and the clearance record name files inside the release or a named data set only."""
    files = [f for f in demo_report.folder.iterdir() if f.suffix in (".html", ".json", ".csv", ".xml")]
    assert {f.suffix for f in files} == {".html", ".json", ".csv", ".xml"}
    assert any(f.name.endswith(".clearance.json") for f in files)
    for path in files:
        text = DATA_URI.sub("data:image/png;base64,...", path.read_text(encoding="utf-8"))
        for folder in _machine_paths(gate_cache):
            where = text.find(folder)
            assert where < 0, f"{path.name} names {folder}: ...{text[max(0, where - 80):where + 80]}..."
    summary = demo_report.summary
    assert summary["release"]["path"] == "demo"
    assert all(not os.path.isabs(p) for p in summary["artifacts"].values())
    for pair in summary["memorisation"]:
        assert not os.path.isabs(pair["synthetic"]) and pair["match"].split(": ")[0] in (
            "reference train", "reference test", "generator source")


def test_summary_follows_the_documented_schema(demo_report):
    summary = demo_report.summary
    schema = (REPO / "docs" / "summary-schema.md").read_text(encoding="utf-8")
    assert summary["schema_version"] == 3 and summary["verdict"] == "cleared"
    for key in [*summary, *CRITERION_FIELDS]:
        assert f"`{key}`" in schema, f"{key} is not documented in docs/summary-schema.md"
    for entry in summary["criteria"]:
        assert list(entry) == list(CRITERION_FIELDS) and entry["outcome"] == "passed"
        assert entry["family"] in FAMILIES
        if entry["kind"] == "threshold":
            assert entry["class"] in summary["release"]["class_counts"]
            bound_met = (entry["judged_value"] >= entry["minimum"] if entry["minimum"] is not None
                         else entry["judged_value"] <= entry["maximum"])
            assert bound_met, entry
    assert summary["clearance"]["written"] and (demo_report.folder / summary["clearance"]["path"]).is_file()
    for key in ("policy", "release", "distribution", "near_duplicates", "resolution"):  # nested keys too
        for inner in summary[key]:
            assert f"`{inner}`" in schema, f"{key}.{inner} is not documented in docs/summary-schema.md"


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
    scores = _read_csv(demo_report.file("scores_csv"))
    rng = np.random.default_rng(2024)
    for row in _read_csv(demo_report.file("pretrained_csv")):
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
    for row in _read_csv(demo_report.file("utility_csv")):
        if row["unavailable"]:
            continue
        labels = np.array([int(s[f"label:{row['class']}"]) for s in test_images])
        per_seed = [roc_auc_score(labels, [float(s[f"utility:{row['cell']}:{row['class']}:seed{seed}"]) for s in test_images])
                    for seed in (0, 1, 2)]
        assert np.mean(per_seed) == pytest.approx(float(row["seed_auroc"]), abs=1e-9)


def test_junit_xml_has_every_criterion_with_its_numbers(demo_report):
    cases = list(ET.parse(demo_report.file("junitxml")).getroot().iter("testcase"))
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
    assert summary["artifacts"]["summary"] == "summary.json", "a file outside the working folder is named, not located"
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


# Run in the page once it has loaded: what a reader's browser made of it, as JSON in a <pre> that --dump-dom shows.
PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const images = [...document.querySelectorAll(".synthgate-report img")];
  const wide = [...document.querySelectorAll("body *")]
    .filter(e => e.getClientRects().length && e.getBoundingClientRect().right > VIEWPORT_PX + 0.5)
    .map(e => e.tagName + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : "")).slice(0, 12);
  const probe = {
    verdict: (document.querySelector(".sg-verdict-word") || {}).textContent,
    class_rows: document.querySelectorAll("#sg-class-table tr").length,
    criteria_rows: document.querySelectorAll("#sg-criteria-table tr").length,
    log_rows: document.querySelectorAll(".results-table-row").length,
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
    scroll_width: document.documentElement.scrollWidth,
    wide: wide,
  };
  const out = document.createElement("pre");
  out.id = "sg-probe";
  out.textContent = JSON.stringify(probe);
  document.body.appendChild(out);
}, 200));
</script>""".replace("VIEWPORT_PX", str(VIEWPORT))


def _in_a_browser(report: Report, tmp_path: Path) -> dict:
    """Open the report at a 1280 px viewport: what rendered, and a screenshot kept under reports/."""
    name = report.summary["release"]["name"]
    page = report.file("html").read_text(encoding="utf-8")
    probed = tmp_path / f"{name}-probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    flags = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={VIEWPORT},2400",
             "--hide-scrollbars", "--virtual-time-budget=10000"]
    dom = subprocess.run([*flags, "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=180,
                         check=True).stdout
    found = re.search(r'<pre id="sg-probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run: " + dom[-2000:]
    shot = tmp_path / f"{name}.png"
    subprocess.run([*flags, f"--screenshot={shot}", report.file("html").resolve().as_uri()],
                   capture_output=True, timeout=180, check=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
    SCREENSHOTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, SCREENSHOTS / f"{name}-screenshot.png")
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: run scripts/browser-check.sh --install (CI does)")
@pytest.mark.parametrize("which", ["demo_report", "defect_report"])
def test_report_in_a_browser(which, request, tmp_path):
    """What a reader sees once pytest-html's scripts ran, for a cleared and a blocked release; screenshots kept."""
    report = request.getfixturevalue(which)
    seen = _in_a_browser(report, tmp_path)
    assert seen["verdict"].strip() == report.summary["verdict"].upper()
    assert seen["class_rows"] == 1 + len(report.summary["classes"])
    assert seen["criteria_rows"] == 1 + len(report.summary["criteria"])
    assert seen["log_rows"] >= len(report.summary["criteria"]), "pytest-html's script did not render the test log"
    # ROC and learning curves, two sample strips per class, memorisation pairs: all decoded by the browser
    assert seen["images"] >= 2 + 2 * len(report.summary["classes"]) and not seen["broken"], seen
    assert seen["scroll_width"] <= VIEWPORT and not seen["wide"], f"wider than a {VIEWPORT} px viewport: {seen}"
