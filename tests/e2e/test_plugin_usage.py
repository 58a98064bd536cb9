"""How the plugin reads to a user: missing or unknown releases, bad configs,
a release folder written by hand."""

from __future__ import annotations

import shutil

from tests.conftest import write_handmade_release, write_policy


def test_without_release_says_how_to_pass_one(run_gate):
    result = run_gate("")
    assert result.returncode == 4
    assert "--release=demo" in result.output
    assert "Traceback" not in result.output


def test_unknown_release_lists_the_ones_found(run_gate):
    result = run_gate("aprill")
    assert result.returncode == 4
    line = next(line for line in result.output.splitlines() if "aprill" in line)
    assert "found:" in line and "demo" in line and "defect-corrupt-file" in line
    assert "Traceback" not in result.output


def test_handmade_release_is_gated(run_gate, tmp_path):
    release = write_handmade_release(tmp_path / "handmade")
    policy = write_policy(tmp_path / "policy.toml")
    result = run_gate(str(release), f"--policy={policy}", "-m", "integrity")
    assert result.returncode == 0, result.output
    assert result.summary["release"]["images"] == 12

    (release / "images" / "005.png").write_bytes(b"not a png")
    shutil.copyfile(release / "images" / "001.png", release / "images" / "stray.png")
    result = run_gate(str(release), f"--policy={policy}", "-m", "integrity")
    assert result.returncode == 1
    assert result.failed_checks() == {"images_decode", "manifest_and_files_match"}
    assert "images/005.png" in result.output and "images/stray.png" in result.output


def test_misspelled_key_names_key_and_file(run_gate, tmp_path):
    release = write_handmade_release(tmp_path / "handmade")
    config = release / "release.toml"
    config.write_text(config.read_text().replace("min_count", "min_cuont"))
    result = run_gate(str(release))
    assert result.returncode == 4
    assert "classes.soft tissue mass.min_cuont" in result.output
    assert "did you mean 'min_count'" in result.output
    assert str(config) in result.output
    assert "Traceback" not in result.output


def test_blocking_the_recorder_is_a_usage_error(run_gate, tmp_path):
    release = write_handmade_release(tmp_path / "handmade")
    result = run_gate(str(release), "-p", "no:synthgate-recorder")
    assert result.returncode == 4 and "-p no:synthgate-recorder" in result.output, result.output
    assert "Traceback" not in result.output


def test_outputs_that_would_replace_what_they_must_not_are_refused_before_any_check(run_gate, tmp_path):
    release = write_handmade_release(tmp_path / "handmade")
    policy = write_policy(tmp_path / "policy.toml")
    (tmp_path / "a-folder").mkdir()
    refused = {
        f"--clearance={tmp_path / 'a-folder'}": "exists and is not a regular file",
        f"--clearance={release / 'manifest.csv'}": "inside the release folder",
        f"--clearance={policy}": "is the gate policy",
        "--clearance=/proc/synthgate.json": "cannot be written",
    }
    for flag, problem in refused.items():
        result = run_gate(str(release), f"--policy={policy}", flag)
        assert result.returncode == 4 and problem in result.output, (flag, result.output)
        assert "passed" not in result.output and "Traceback" not in result.output, result.output
    same = tmp_path / "out.json"
    result = run_gate(str(release), f"--policy={policy}", f"--junitxml={same}", f"--clearance={same}")
    assert result.returncode == 4 and "is also where --junitxml goes" in result.output, result.output
    assert (release / "manifest.csv").read_text().startswith("path")  # nothing was written over it


def test_an_empty_option_value_is_an_error_not_the_default(run_gate, tmp_path):
    """`--policy=$POLICY` with the variable unset must not gate under another policy."""
    release = write_handmade_release(tmp_path / "handmade")
    for flag in ("--policy=", "--clearance=", "--synthgate-cache= "):
        result = run_gate(str(release), flag)
        assert result.returncode == 4, (flag, result.output)
        assert f"{flag.split('=')[0]} was given an empty value" in result.output, result.output
