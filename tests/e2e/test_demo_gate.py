"""The gate end to end, as CI runs it: the demo and unlabelled-512 clear, each defect release is
blocked by exactly the checks its recipe names."""

from __future__ import annotations

import pytest

from synthgate.demo.world import expected_outcome, recipe_files

RECIPES = sorted(recipe_files())
DEFECTS = [name for name in RECIPES if not expected_outcome(name).get("cleared", False)]
CLEARED = [name for name in RECIPES if expected_outcome(name).get("cleared", False)]  # demo, unlabelled-512


def test_every_recipe_states_its_expected_verdict():
    for name in RECIPES:
        expect = expected_outcome(name)
        assert "cleared" in expect, f"{name}: recipe has no [expect] cleared = true|false"
        assert expect["cleared"] or expect.get("blocked_by"), f"{name}: a blocked release must name its checks"


def _limits(summary: dict) -> dict[str, dict]:
    """The release-level checks (distribution, privacy) by name, with the number each judged."""
    return {c["name"]: c for c in summary["criteria"] if c["family"] in ("distribution", "privacy") and c["class"] is None}


@pytest.mark.parametrize("name", CLEARED)
def test_demo_is_cleared(run_gate, name):
    result = run_gate(name)
    assert result.returncode == 0, result.output
    assert result.summary["verdict"] == "cleared"
    assert len(result.summary["release"]["content_hash"]) == 64
    limits = _limits(result.summary)
    assert set(limits) == {"frechet_within_real_spread", "not_detectable_as_synthetic", "no_mode_collapse",
                           "no_memorised_training_images", "no_copies_of_reference_images"}
    for entry in limits.values():
        assert entry["value"] <= entry["maximum"], entry
        assert entry["baseline"] is not None, entry
    # progress reaches the log although pytest captures the tests' output: a start and an end line per step
    assert "synthgate: checking" in result.output and "files of release" in result.output, result.output
    assert result.output.count(": done in ") >= 1


@pytest.mark.parametrize("name", DEFECTS)
def test_defect_release_is_blocked_by_its_check_only(run_gate, name):
    result = run_gate(name)
    assert result.returncode == 1, result.output
    assert result.summary["verdict"] == "blocked"
    assert result.failed_checks() == set(expected_outcome(name)["blocked_by"]), result.output
    for entry in _limits(result.summary).values():  # the summary records the number each check judged
        if entry["value"] is None:  # not measurable on this release (e.g. its files failed): never a pass
            assert entry["outcome"] != "passed", entry
        else:
            assert (entry["value"] > entry["maximum"]) == (entry["outcome"] == "failed"), entry


def test_compare_tells_a_degraded_release_from_real_and_from_a_good_one(gate_cache, tmp_path, capsys):
    """The multi-class detectability: real vs the demo vs a degraded release, in one model's feature space."""
    import json

    from synthgate.cli import main

    out = tmp_path / "compare.json"
    assert main(["compare", "demo", "defect-degraded", "--cache", str(gate_cache), "--json", str(out)]) == 0
    assert "One-vs-rest AUROC" in capsys.readouterr().out
    sources = json.loads(out.read_text())["sources"]
    assert list(sources) == ["real: generator source images", "demo", "defect-degraded"]
    auroc = {name: entry["auroc"]["value"] for name, entry in sources.items()}
    assert auroc["defect-degraded"] > 0.95  # blurred and noised: told apart from everything else
    real, demo, degraded = (sources[name]["confusion"] for name in sources)  # rows: real, demo, degraded
    assert degraded[2] > 0.95 * sum(degraded)
    assert real[2] + demo[2] < 0.05 * (sum(real) + sum(demo))  # nothing good is taken for degraded
    assert real[0] < 0.5 * sum(real)  # real images are not singled out: the demo's look the same


def _demo_copy(gate_cache, folder):
    """A copy of the demo world's release and the data sets it refers to, for a test to spoil."""
    import shutil

    from synthgate.demo.world import build_world

    world = build_world(gate_cache)
    for part in ("source", "reference", "releases/demo"):
        shutil.copytree(world / part, folder / part, symlinks=True)
    return folder / "releases" / "demo"


def _palette_image(release):
    from PIL import Image

    path = sorted((release / "images").glob("*.png"))[3]
    Image.open(path).convert("P").save(path)


def _label_written_as_float(release):
    manifest = release / "manifest.csv"
    head, first, *rest = manifest.read_text().splitlines()
    column = head.split(",").index("soft tissue mass")
    cells = first.split(",")
    cells[column] = f"{int(cells[column])}.0"
    manifest.write_text("\n".join([head, ",".join(cells), *rest]) + "\n")


def test_a_release_failing_integrity_is_blocked_by_it_and_the_data_sets_are_still_checked(
        run_gate, gate_cache, tmp_path, quick_demo_policy):
    """Leakage among the data sets never reads the release: it runs; what reads the release's images waits for
    sound files (a palette image or a label of "1.0" is an integrity finding, not a crash in another check)."""
    release = _demo_copy(gate_cache, tmp_path)
    _palette_image(release)
    _label_written_as_float(release)
    result = run_gate(str(release), f"--policy={quick_demo_policy}")
    assert result.returncode == 1 and result.summary["verdict"] == "blocked", result.output
    assert result.failed_checks() == {"image_mode_and_bit_depth", "labels_in_vocabulary"}, result.output
    assert "Traceback" not in result.output and "Error" not in result.output, result.output
    outcomes = {c["name"]: c["outcome"] for c in result.summary["criteria"] if c["family"] == "leakage"}
    assert outcomes.pop("release_holds_no_reference_test_images") == "skipped"
    assert outcomes.pop("release_holds_no_model_training_images") == "skipped"
    assert set(outcomes.values()) == {"passed"}, outcomes
