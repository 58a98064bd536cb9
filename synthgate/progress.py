"""Progress of the gate's long steps, so that a person knows it is working during a long first run.

Each step (hashing and checking files, decoding, feature extraction, training, the
retraining grid, the near-copy searches) runs inside :func:`step`. On a terminal it
shows a progress bar; otherwise (CI, output piped to a file or a log) it writes one
line when the step starts and one when it ends, with the time taken. Steps run only
on a cache miss, so a warm run stays quiet. The lines go to the process's own
stderr (``sys.__stderr__``): pytest captures ``sys.stderr`` while a test runs, and
the gate's work happens inside its tests. ``SYNTHGATE_PROGRESS=0`` silences them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm

BAR_DELAY_S = 1.0  # a bar appears only for a step still running after this long


class Step:
    """What a running step reports to: ``advance(n)`` after each piece of work."""

    def __init__(self, bar: tqdm | None):
        self._bar = bar

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)


def _stream():
    return sys.__stderr__ if sys.__stderr__ is not None else sys.stderr


def _mode() -> str:
    """'off', 'bar' (an interactive terminal) or 'lines' (CI, a log, a pipe)."""
    if os.environ.get("SYNTHGATE_PROGRESS", "1") == "0":
        return "off"
    stream = _stream()
    interactive = hasattr(stream, "isatty") and stream.isatty() and not os.environ.get("CI")
    return "bar" if interactive else "lines"


@contextmanager
def step(what: str, total: int | None = None, unit: str = "image") -> Iterator[Step]:
    """Report ``what`` (e.g. "extracting features of 1,069 images") while the block runs."""
    mode, stream = _mode(), _stream()
    if mode == "off":
        yield Step(None)
        return
    start = time.perf_counter()
    if mode == "lines":
        print(f"synthgate: {what} ...", file=stream, flush=True)
        yield Step(None)
    else:
        with tqdm(total=total, desc=f"synthgate: {what}", unit=unit, file=stream, leave=False, delay=BAR_DELAY_S,
                  dynamic_ncols=True) as bar:
            yield Step(bar)
    if mode == "lines":
        print(f"synthgate: {what}: done in {time.perf_counter() - start:.1f} s", file=stream, flush=True)
