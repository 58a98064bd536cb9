"""Progress of the gate's long steps, so that a person knows it is working during a long first run.

Each step (hashing and checking files, decoding, feature extraction, training, the
retraining grid, the near-copy searches) runs inside :func:`step`. On a terminal it
shows a progress bar; otherwise (CI, output piped to a file or a log) it writes one
line when the step starts and one when it ends, with the time taken. Steps run only
on a cache miss, so a warm run stays quiet. Under pytest the gate's work happens
inside its tests, where pytest captures stderr (the file descriptor too), so the
plugin routes progress to pytest's own terminal writer (:func:`route_to`); elsewhere
it goes to the process's stderr. ``SYNTHGATE_PROGRESS=0`` silences it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator

from tqdm import tqdm

BAR_DELAY_S = 1.0  # a bar appears only for a step still running after this long


class Step:
    """What a running step reports to: ``advance(n)`` after each piece of work."""

    def __init__(self, bar: tqdm | None):
        self._bar = bar

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)


_routed = None  # where progress goes instead of the process's stderr (set by the pytest plugin)


class PytestTerminal:
    """pytest's terminal reporter as a stream: it writes past the capture of the running test (as pdb does)."""

    def __init__(self, reporter, capture=None):
        self.reporter, self.capture = reporter, capture

    def write(self, text: str) -> None:
        with self.capture.global_and_fixture_disabled() if self.capture is not None else contextlib.nullcontext():
            writer = getattr(self.reporter, "_tw", None)  # pytest's TerminalWriter knows where the line stands
            if text.endswith("\n") and writer is not None and writer.width_of_current_line:
                text = "\n" + text  # a whole line: on a line of its own, after pytest's progress dots
            self.reporter.write(text, flush=True)  # through the writer, which then knows the line is done

    def flush(self) -> None:
        pass  # every write is flushed

    def isatty(self) -> bool:
        return bool(self.reporter.isatty())


def route_to(stream) -> None:
    """Send progress to ``stream`` (None: back to the process's stderr)."""
    global _routed
    _routed = stream


def _stream():
    if _routed is not None:
        return _routed
    return sys.__stderr__ if sys.__stderr__ is not None else sys.stderr


def _mode() -> str:
    """'off', 'bar' (an interactive terminal) or 'lines' (CI, a log, a pipe)."""
    if os.environ.get("SYNTHGATE_PROGRESS", "1") == "0":
        return "off"
    stream = _stream()
    interactive = hasattr(stream, "isatty") and stream.isatty() and not os.environ.get("CI")
    return "bar" if interactive else "lines"


@contextlib.contextmanager
def step(what: str, total: int | None = None, unit: str = "image") -> Iterator[Step]:
    """Report ``what`` (e.g. "extracting features of 1,069 images") while the block runs."""
    mode, stream = _mode(), _stream()
    if mode == "off":
        yield Step(None)
    elif mode == "bar":
        with tqdm(total=total, desc=f"synthgate: {what}", unit=unit, file=stream, leave=False, delay=BAR_DELAY_S,
                  dynamic_ncols=True) as bar:
            yield Step(bar)
    else:
        start = time.perf_counter()
        stream.write(f"synthgate: {what} ...\n")
        yield Step(None)  # a step that fails never says done
        stream.write(f"synthgate: {what}: done in {time.perf_counter() - start:.1f} s\n")
