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


class FakeReporter:
    """What pytest's terminal reporter offers the progress stream (its writer in the middle of a line of dots)."""

    def __init__(self):
        self.written = []
        self._tw = type("Writer", (), {"width_of_current_line": 3})()

    def write(self, text, flush=False):
        self.written.append(text)

    def isatty(self):
        return False


def test_under_a_gate_run_progress_goes_through_pytests_terminal_writer(monkeypatch, capfd):
    """pytest captures file descriptor 2 inside tests: only its own terminal writer reaches the terminal."""
    from synthgate import progress

    reporter = FakeReporter()
    monkeypatch.setattr(progress, "_routed", None)
    monkeypatch.setenv("CI", "1")
    progress.route_to(progress.PytestTerminal(reporter))
    with step("checking 2 files", total=2) as running:
        running.advance(2)
    progress.route_to(None)
    assert reporter.written[0] == "\nsynthgate: checking 2 files ...\n"  # a line of its own, after the dots
    assert reporter.written[1].startswith("\nsynthgate: checking 2 files: done in ")
    assert capfd.readouterr().err == ""  # nothing on file descriptor 2, which pytest captures in a test
