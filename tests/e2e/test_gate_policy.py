"""No path to green that did not pass everything required: partial runs by every selection
mechanism pytest has, look-alike checks, missing inputs and command-line grids are never
"cleared" and never write a clearance record; the verdict is the last line of the run."""

from __future__ import annotations

import pytest

from tests.conftest import write_handmade_release, write_policy


@pytest.fixture
def handmade(tmp_path):
    """A release with sound files but no reference data and no model: model-based checks cannot run."""
    return write_handmade_release(tmp_path / "handmade"), write_policy(tmp_path / "policy.toml")


def _no_record(result, tmp_path) -> None:
    assert not result.summary or not result.summary["clearance"]["written"], result.output
    assert not list(tmp_path.rglob("*.clearance.json"))


def test_a_full_run_with_a_required_input_missing_is_blocked_not_skipped(handmade, run_gate, tmp_path):
    release, policy = handmade
    result = run_gate(str(release), f"--policy={policy}")
    assert result.returncode == 1, result.output
    assert result.summary["verdict"] == "blocked"
    failed = {c["key"]: c["message"] for c in result.summary["criteria"] if c["outcome"] == "failed"}
    assert "[reference] train and test data" in failed["synthetic_minus_real_auroc[soft tissue mass]"]
    assert result.output.strip().splitlines()[-1].startswith("synthgate: handmade BLOCKED")
    _no_record(result, tmp_path)


def test_the_default_policy_blocks_a_release_too_small_to_judge(tmp_path, run_gate):
    release = write_handmade_release(tmp_path / "handmade")
    result = run_gate(str(release))
    assert result.returncode == 1, result.output
    assert "class_minimum_counts" in result.failed_checks()


@pytest.mark.parametrize("args", [
    ("-m", "integrity"),
    ("-k", "decode"),
    ("-m", "integrity", "--deselect", "quality_checks/test_integrity.py::test_images_decode"),
    tuple(f"--ignore=quality_checks/test_{family}.py" for family in ("leakage", "fidelity", "utility", "distribution", "privacy")),
    ("-o", "python_files=test_integrity.py"),
    ("-m", "integrity", "-x"),
    ("--checks=quality_checks/test_integrity.py",),
    ("--checks=quality_checks/test_integrity.py::test_images_decode",),
])
def test_a_partial_run_is_incomplete_keeps_pytests_code_and_says_so_last(handmade, run_gate, tmp_path, args):
    release, policy = handmade
    checks = [a.removeprefix("--checks=") for a in args if a.startswith("--checks=")]
    args = [a for a in args if not a.startswith("--checks=")]
    result = run_gate(str(release), f"--policy={policy}", *args, checks=checks[0] if checks else "quality_checks")
    assert result.summary["verdict"] == "incomplete", result.output
    assert result.returncode == 0  # a deliberately partial run keeps pytest's exit code
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("synthgate: handmade INCOMPLETE") and "did not run" in last
    _no_record(result, tmp_path)


def test_a_look_alike_check_in_a_subfolder_counts_for_nothing(handmade, run_gate, tmp_path):
    release, policy = handmade
    fake = tmp_path / "checks"
    fake.mkdir()
    (fake / "test_fake.py").write_text(
        "import pytest\n\n@pytest.mark.fidelity\n@pytest.mark.parametrize('c', ['soft tissue mass'])\n"
        "def test_synthetic_minus_real_auroc(c):\n    pass\n"
    )
    result = run_gate(str(release), f"--policy={policy}", "-m", "integrity or fidelity", str(fake))
    assert result.summary["verdict"] != "cleared", result.output
    assert "synthetic_minus_real_auroc[soft tissue mass]" in " ".join(result.summary["verdict_reasons"])
    _no_record(result, tmp_path)


@pytest.mark.parametrize("option, words", [
    ("--utility-ratios=0.001", "ratios"),
    ("--utility-sizes=0", "sizes"),
    ("--utility-seeds=0", "at least 3 distinct seeds"),
    ("--utility-ratios=nan", "ratios"),
    ("--utility-mode=magic", "probe, finetune"),
])
def test_a_meaningless_grid_on_the_command_line_is_refused(handmade, run_gate, option, words):
    release, policy = handmade
    result = run_gate(str(release), f"--policy={policy}", option)
    assert result.returncode == 4, result.output
    assert words in result.output and "Traceback" not in result.output


def test_a_grid_override_never_clears(handmade, run_gate, tmp_path):
    release, policy = handmade
    result = run_gate(str(release), f"--policy={policy}", "--utility-seeds=4,5,6", "-m", "integrity")
    assert "the retraining grid was overridden on the command line" in result.summary["verdict_reasons"]
    _no_record(result, tmp_path)
