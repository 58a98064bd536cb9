"""Environment problems are one line with exit code 4, before any expensive work: a cache that
is a file or cannot be written, a release.toml that is not UTF-8, a missing checkpoint or card."""

from __future__ import annotations

import os

import pytest

from tests.conftest import write_handmade_release


def _with_model(release, model: str):
    config = release / "release.toml"
    config.write_text(config.read_text() + "\n[model]\n" + model + "\n")
    return release


def _one_line_usage_error(result, *words):
    assert result.returncode == 4, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("ERROR:"))
    assert all(word in line for word in words), line
    assert "Traceback" not in result.output


def test_a_cache_that_is_a_file(run_gate, tmp_path):
    release = write_handmade_release(tmp_path / "handmade")
    (tmp_path / "cache").write_text("not a folder")
    _one_line_usage_error(run_gate(str(release), f"--synthgate-cache={tmp_path / 'cache'}"), "cache", "is a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_a_cache_that_cannot_be_written(run_gate, tmp_path):
    release = write_handmade_release(tmp_path / "handmade")
    (tmp_path / "ro").mkdir(mode=0o500)
    _one_line_usage_error(run_gate(str(release), f"--synthgate-cache={tmp_path / 'ro' / 'cache'}"), "cannot be written")


def test_a_release_toml_that_is_not_utf8(run_gate, tmp_path):
    release = write_handmade_release(tmp_path / "handmade")
    (release / "release.toml").write_bytes(b"\xff\xfe[release]\n")
    _one_line_usage_error(run_gate(str(release)), "release.toml", "not UTF-8")


def test_a_missing_checkpoint(run_gate, tmp_path):
    release = _with_model(write_handmade_release(tmp_path / "handmade"), 'checkpoint = "models/missing.pt"')
    _one_line_usage_error(run_gate(str(release)), "model.checkpoint", "missing.pt", "does not exist")


def test_a_checkpoint_without_its_model_card(run_gate, tmp_path):
    release = _with_model(write_handmade_release(tmp_path / "handmade"), 'checkpoint = "model.pt"')
    (release / "model.pt").write_bytes(b"")
    _one_line_usage_error(run_gate(str(release)), "model.pt.card.json", "model card does not exist")


def test_an_unknown_policy_file(run_gate, tmp_path):
    release = write_handmade_release(tmp_path / "handmade")
    _one_line_usage_error(run_gate(str(release), f"--policy={tmp_path / 'nowhere.toml'}"), "nowhere.toml", "not found")
