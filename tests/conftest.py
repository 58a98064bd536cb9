"""Shared fixtures for synthgate's own tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from synthgate.demo import phantoms
from synthgate.demo.cohort import Item, write_collection

REPO = Path(__file__).resolve().parent.parent

HANDMADE_TOML = """\
[release]
name = "handmade"
generator = "a hand-written test release"
source_datasets = ["phantom-site-a"]

[images]
width = 64
height = 64
mode = "L"

[classes."soft tissue mass"]
model_output = "Mass"
min_count = 3
"""


@pytest.fixture(scope="session")
def gate_cache(tmp_path_factory) -> Path:
    """One synthgate cache for the whole test session (demo world, features, models), shared by pytest-xdist's
    workers (builds, training and results are locked: one worker computes, the others wait and reuse)."""
    if os.environ.get("SYNTHGATE_TEST_CACHE"):
        return Path(os.environ["SYNTHGATE_TEST_CACHE"])
    shared = tmp_path_factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER") else None
    if shared is None:
        return tmp_path_factory.mktemp("synthgate-cache")
    (shared / "synthgate-cache").mkdir(exist_ok=True)
    return shared / "synthgate-cache"


@dataclass
class GateRun:
    returncode: int
    output: str
    summary: dict | None

    def failed_checks(self) -> set[str]:
        """Names of the failed criteria (the registry's names, without the class)."""
        criteria = self.summary["criteria"] if self.summary else []
        return {c["name"] for c in criteria if c["outcome"] in ("failed", "error")}


@pytest.fixture(scope="session")
def run_gate(gate_cache, tmp_path_factory):
    """Run ``pytest quality_checks`` in a subprocess, as CI would, and read its JSON summary."""

    def run(release: str, *args: str, checks: str = "quality_checks") -> GateRun:
        out = tmp_path_factory.mktemp("gate")
        summary_file = out / "summary.json"
        command = [sys.executable, "-m", "pytest", checks, f"--release={release}",
                   f"--gate-summary={summary_file}", "-q", "-p", "no:cacheprovider", *args]
        env = {**os.environ, "SYNTHGATE_CACHE": str(gate_cache)}
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else None
        return GateRun(done.returncode, done.stdout + done.stderr, summary)

    return run


def write_handmade_release(root: Path, n: int = 12, seed: int = 1) -> Path:
    """A small release written by hand in the documented format (not one of the fixtures)."""
    items = []
    for k in range(n):
        findings = {"soft tissue mass"} if k % 2 else set()
        pixels = phantoms.render(seed * 1000 + k, findings, site="site-a")
        items.append(Item(f"images/{k:03d}.png", pixels, {"soft tissue mass": int(bool(findings))}, f"p{k}", k))
    write_collection(root, items, with_patients=False)
    (root / "release.toml").write_text(HANDMADE_TOML)
    return root


HANDMADE_POLICY = """\
[policy]
name = "tests: a handmade release's policy"
min_positives = 3
min_negatives = 3

[criteria."*"]
synthetic_minus_real_auroc = { min = -0.05, judge = "ci_high" }
"""


def write_policy(path: Path, text: str = HANDMADE_POLICY) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def quick_demo_policy(tmp_path_factory) -> Path:
    """The demo's policy with a one-cell-per-framework grid: the same criteria, faster retraining."""
    from synthgate.demo.world import POLICY_FILE

    text = POLICY_FILE.read_text().replace("ratios = [1.0, 2.0, 3.0]", "ratios = [1.0]")
    text = text.replace("sizes = [0.1, 0.25, 0.5, 1.0]", "sizes = [1.0]")
    assert "ratios = [1.0]" in text and "sizes = [1.0]" in text
    return write_policy(tmp_path_factory.mktemp("policy") / "quick-demo-policy.toml", text)
