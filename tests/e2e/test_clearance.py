"""A clearance record binds the exact bytes the gate cleared: `synthgate verify` accepts the
release unchanged, names every file that changed, and notices an edited record."""

from __future__ import annotations

import json
import shutil

import pytest

from synthgate.clearance import SELF_HASH, read_record, self_hash
from synthgate.cli import main
from synthgate.config.release import CLEARANCE_NAME
from synthgate.demo.world import build_world


@pytest.fixture(scope="module")
def cleared(run_gate, gate_cache, tmp_path_factory, quick_demo_policy):
    """A copy of the demo world gated under the demo policy with a small retraining grid, and the record it earned."""
    world = build_world(gate_cache)
    copy = tmp_path_factory.mktemp("cleared")
    for part in ("source", "reference", "releases/demo"):
        shutil.copytree(world / part, copy / part, symlinks=True)
    record = copy / "demo.clearance.json"
    result = run_gate(str(copy / "releases" / "demo"), f"--clearance={record}", f"--policy={quick_demo_policy}")
    assert result.returncode == 0 and result.summary["verdict"] == "cleared", result.output
    return copy, record, result.summary


@pytest.fixture
def world(cleared, tmp_path):
    """A fresh copy of the cleared world for a test to tamper with."""
    shutil.copytree(cleared[0], tmp_path / "world", symlinks=True)
    return tmp_path / "world"


def verify(release, record, capsys, policy=None) -> tuple[int, str]:
    code = main(["verify", str(release), "--record", str(record), f"--policy={policy}"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_record_binds_release_configuration_version_and_files(cleared):
    _, record_file, summary = cleared
    record = read_record(record_file)
    assert record[SELF_HASH] == self_hash(record) == summary["clearance"][SELF_HASH]
    release = record["release"]
    assert release["content_hash"] == summary["release"]["content_hash"]
    assert release["config_sha256"] == summary["release"]["config_hash"]
    assert len(release["files"]) == summary["release"]["images"]
    assert release["manifest"]["path"] == "manifest.csv"
    assert record["synthgate_version"] == summary["tool"]["version"]
    assert record["policy"]["sha256"] == summary["policy"]["sha256"]
    assert record["gate"]["required"] == summary["required"]


def test_a_grid_given_on_the_command_line_never_earns_a_record(run_gate, cleared, quick_demo_policy, tmp_path):
    record = tmp_path / "override.clearance.json"
    result = run_gate(str(cleared[0] / "releases" / "demo"), f"--clearance={record}", f"--policy={quick_demo_policy}",
                      "--utility-seeds=3,4,5")
    assert result.summary["verdict"] == "incomplete" and result.returncode == 6, result.output
    assert not record.exists()


def test_unchanged_release_verifies(world, cleared, capsys, quick_demo_policy):
    code, output = verify(world / "releases" / "demo", cleared[1], capsys, quick_demo_policy)
    assert code == 0, output
    assert output.startswith("OK: release demo") and read_record(cleared[1])["release"]["content_hash"] in output


def test_a_changed_policy_fails_verification(world, cleared, capsys, quick_demo_policy, tmp_path):
    edited = tmp_path / "policy.toml"
    edited.write_text(quick_demo_policy.read_text() + "\n# a comment changes the policy's hash\n")
    code, output = verify(world / "releases" / "demo", cleared[1], capsys, edited)
    assert code == 1 and "gate policy policy.toml: changed since clearance" in output


def test_one_flipped_byte_names_that_file(world, cleared, capsys, quick_demo_policy):
    image = sorted((world / "releases" / "demo" / "images").iterdir())[7]
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0x01
    image.write_bytes(bytes(data))
    code, output = verify(world / "releases" / "demo", cleared[1], capsys, quick_demo_policy)
    assert code == 1
    problems = [line.strip() for line in output.splitlines()[1:]]
    assert problems == [f"images/{image.name}: changed"]


def test_added_removed_and_reconfigured_are_each_named(world, cleared, capsys, quick_demo_policy):
    release = world / "releases" / "demo"
    images = sorted((release / "images").iterdir())
    images[0].unlink()
    shutil.copyfile(images[1], release / "images" / "extra.png")
    with open(release / "manifest.csv", "a") as manifest:
        manifest.write("images/extra.png,0,0,0,0\n")
    with open(release / "release.toml", "a") as config:
        config.write("\n# a comment changes the gate configuration's hash\n")
    code, output = verify(release, cleared[1], capsys, quick_demo_policy)
    assert code == 1
    assert "release.toml: changed" in output
    assert "manifest.csv: changed (the manifest)" in output
    assert "images/extra.png: added (not in the record)" in output
    assert f"images/{images[0].name}: removed (in the record, not on disk)" in output


def test_an_edited_record_is_detected(world, cleared, tmp_path, capsys, quick_demo_policy):
    record = json.loads(cleared[1].read_text())
    record["gate"]["criteria"][0]["value"] = 0.99
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(record))
    code, output = verify(world / "releases" / "demo", edited, capsys, quick_demo_policy)
    assert code == 1
    assert "record was edited" in output


def test_a_record_shipped_inside_the_release_is_found_and_not_hashed(world, cleared, capsys, quick_demo_policy):
    release = world / "releases" / "demo"
    shutil.copyfile(cleared[1], release / CLEARANCE_NAME)
    assert main(["verify", str(release), f"--policy={quick_demo_policy}"]) == 0
    assert f"{release / CLEARANCE_NAME}" in capsys.readouterr().out
