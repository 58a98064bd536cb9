"""Progress of long steps: a line when a step starts and one when it ends, outside a terminal."""

from __future__ import annotations

import pytest

from synthgate.progress import step


def test_a_step_writes_a_start_and_an_end_line_under_ci(monkeypatch, capfd):
    monkeypatch.setenv("CI", "1")
    monkeypatch.delenv("SYNTHGATE_PROGRESS", raising=False)
    with step("extracting features of 3 images", total=3) as progress:
        for _ in range(3):
            progress.advance()
    lines = capfd.readouterr().err.splitlines()
    assert lines[0] == "synthgate: extracting features of 3 images ..."
    assert lines[1].startswith("synthgate: extracting features of 3 images: done in ") and lines[1].endswith(" s")


def test_lines_reach_the_terminal_even_while_sys_stderr_is_captured(monkeypatch, capfd):
    """The gate's work runs inside its tests, where pytest captures sys.stderr: progress uses the process's stderr."""
    import io
    import sys

    captured = io.StringIO()
    monkeypatch.setattr(sys, "stderr", captured)
    monkeypatch.setenv("CI", "1")
    with step("training"):
        pass
    assert captured.getvalue() == ""
    assert "synthgate: training ..." in capfd.readouterr().err


def test_a_failed_step_never_says_done(monkeypatch, capfd):
    monkeypatch.setenv("CI", "1")
    with pytest.raises(RuntimeError), step("the retraining grid"):
        raise RuntimeError("out of memory")
    assert "done" not in capfd.readouterr().err


def test_progress_can_be_silenced(monkeypatch, capfd):
    monkeypatch.setenv("SYNTHGATE_PROGRESS", "0")
    with step("checking files", total=2) as progress:
        progress.advance(2)
    assert capfd.readouterr().err == ""
