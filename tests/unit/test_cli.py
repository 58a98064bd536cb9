"""The `synthgate` command as a user meets it: help that reads well, one clear line per
mistake with the documented exit code, and each subcommand doing its job."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from synthgate.cli import main
from synthgate.demo import phantoms
from synthgate.demo.cohort import Item, write_collection
from synthgate.models.loading import load_checkpoint
from tests.conftest import REPO, write_handmade_release, write_policy


def run_cli(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    """`synthgate ...` in a fresh process (the gate runs pytest, which must not run inside this one)."""
    return subprocess.run([sys.executable, "-m", "synthgate.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_help_lists_every_command_and_its_exit_codes(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for command in ("gate", "verify", "demo", "compare", "train-reference"):
        assert command in text
    assert "0 cleared, 1 blocked" in text and "6 incomplete" in text
    assert "0 the release matches its clearance record, 1 it does not, 2 usage error" in text


def test_without_a_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize("argv, code", [
    (["demo", "--bogus"], 4),
    (["verify"], 2),
    (["train-reference", "--data", "somewhere"], 4),
    (["train-reference", "--data", "a", "--release", "b", "--out", "x.pt"], 4),
])
def test_bad_command_lines_exit_with_the_commands_usage_code(argv, code, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == code
    assert "error:" in capsys.readouterr().err


def test_verify_names_an_unknown_release_and_the_ones_found(capsys):
    assert main(["verify", "aprill"]) == 2
    error = capsys.readouterr().err
    assert "aprill" in error and "found:" in error and "demo" in error
    assert "Traceback" not in error


def test_verify_without_a_record_says_where_it_looked(tmp_path, capsys):
    release = write_handmade_release(tmp_path / "handmade")
    assert main(["verify", str(release), "--reports", str(tmp_path / "reports")]) == 2
    assert f"{tmp_path / 'reports' / 'handmade.clearance.json'}: no clearance record" in capsys.readouterr().err

    (tmp_path / "other.json").write_text(json.dumps({"verdict": "cleared"}))
    assert main(["verify", str(release), "--record", str(tmp_path / "other.json")]) == 2
    assert "not a synthgate clearance record" in capsys.readouterr().err


def test_gate_with_an_unknown_release_is_a_usage_error(tmp_path):
    done = run_cli("gate", "aprill", "--reports", str(tmp_path))
    assert done.returncode == 4, done.stdout + done.stderr
    assert "no release named 'aprill'" in done.stdout + done.stderr


def test_gate_of_part_of_the_checks_is_incomplete_and_writes_no_record(tmp_path):
    release = write_handmade_release(tmp_path / "handmade")
    policy = write_policy(tmp_path / "policy.toml")
    done = run_cli("gate", str(release), "--reports", str(tmp_path / "reports"), f"--policy={policy}", "-m", "integrity")
    assert done.returncode == 6, done.stdout + done.stderr
    assert "verdict incomplete" in done.stderr
    summary = json.loads((tmp_path / "reports" / "handmade.json").read_text())
    assert summary["verdict"] == "incomplete" and not summary["clearance"]["written"]
    assert (tmp_path / "reports" / "handmade.html").exists() and (tmp_path / "reports" / "handmade.xml").exists()
    assert not (tmp_path / "reports" / "handmade.clearance.json").exists()


def test_demo_builds_the_world_and_lists_each_release_with_its_expected_verdict(gate_cache, capsys):
    assert main(["demo", "--cache", str(gate_cache)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("demo world: ")
    listed = {line.split()[0]: line for line in lines[2:]}
    assert "(expected: cleared)" in listed["demo"]
    assert "(expected: blocked by no_blank_images)" in listed["defect-blank"]


def _labelled_folder(root, n: int = 24):
    items = []
    for k in range(n):
        findings = {"effusion"} if k % 2 else set()
        pixels = phantoms.render(500 + k, findings, site="site-b")
        items.append(Item(f"images/{k:03d}.png", pixels, {"effusion": int(bool(findings))}, f"p{k}", k))
    write_collection(root, items)
    return root


def test_train_reference_writes_a_checkpoint_with_its_card(tmp_path, capsys):
    data = _labelled_folder(tmp_path / "data")
    out = tmp_path / "models" / "reference.pt"
    code = main(["train-reference", "--data", str(data), "--dataset", "phantom-site-b", "--out", str(out),
                 "--size", "32", "--epochs", "1", "--device", "cpu", "--cache", str(tmp_path / "cache")])
    assert code == 0
    model = load_checkpoint(out)
    assert model.card.training_datasets == ["phantom-site-b"]
    assert model.outputs == ["effusion"] and model.card.input_size == 32
    assert "validation AUROC: effusion" in capsys.readouterr().out


def test_train_reference_on_a_folder_needs_its_data_set_name(tmp_path, capsys):
    data = _labelled_folder(tmp_path / "data", n=4)
    assert main(["train-reference", "--data", str(data), "--out", str(tmp_path / "m.pt")]) == 4
    assert "--dataset" in capsys.readouterr().err


def test_compare_of_releases_with_different_models_is_one_config_error():
    """It used to raise TypeError (a ConfigError built with one argument)."""
    from pathlib import Path
    from types import SimpleNamespace

    from synthgate.config.toml import ConfigError
    from synthgate.evaluation.comparison import compare_sources

    def evaluation(name, model_id):
        return SimpleNamespace(model_id=model_id,
                               release=SimpleNamespace(name=name, config_file=Path(name) / "release.toml"))

    with pytest.raises(ConfigError, match="evaluated by different models") as error:
        compare_sources([evaluation("april", "ckpt:a"), evaluation("may", "ckpt:b")])
    assert "may/release.toml" in str(error.value)


@pytest.mark.parametrize("passed_on", [["--release=demo"], ["--gate-summary", "x.json"], ["--html=x.html"]])
def test_gate_refuses_pytest_options_it_sets_itself(tmp_path, passed_on):
    """Given again, they would gate another release under this one's name, or hide the verdict it reads."""
    release = write_handmade_release(tmp_path / "handmade")
    done = run_cli("gate", str(release), "--reports", str(tmp_path / "reports"), *passed_on)
    assert done.returncode == 4, done.stdout + done.stderr
    assert f"{passed_on[0].split('=')[0]}: set by `synthgate gate` itself" in done.stderr
    assert not (tmp_path / "reports").exists()
