"""The gate end to end, as CI runs it: the demo clears, each defect release is
blocked by exactly the checks its recipe names."""

from __future__ import annotations

import pytest

from synthgate.demo import expected_outcome, recipe_dirs

RECIPES = sorted(recipe_dirs())
DEFECTS = [name for name in RECIPES if not expected_outcome(name).get("cleared", False)]


def test_every_recipe_states_its_expected_verdict():
    for name in RECIPES:
        expect = expected_outcome(name)
        assert "cleared" in expect, f"{name}: recipe has no [expect] cleared = true|false"
        assert expect["cleared"] or expect.get("blocked_by"), f"{name}: a blocked release must name its checks"


def test_demo_is_cleared(run_gate):
    result = run_gate("demo")
    assert result.returncode == 0, result.output
    assert result.summary["verdict"] == "cleared"
    assert len(result.summary["release"]["content_hash"]) == 64


@pytest.mark.parametrize("name", DEFECTS)
def test_defect_release_is_blocked_by_its_check_only(run_gate, name):
    result = run_gate(name)
    assert result.returncode == 1, result.output
    assert result.summary["verdict"] == "blocked"
    assert result.failed_checks() == set(expected_outcome(name)["blocked_by"]), result.output
