"""Turning findings into gate verdicts that read well in a terminal and in the report."""

from __future__ import annotations

from synthgate.integrity import Offence

SHOWN_IN_MESSAGE = 5


class GateFailure(AssertionError):
    """A failed gate criterion; ``rows`` is the table of offenders the report attaches."""

    def __init__(self, message: str, rows: list[dict] | None = None):
        super().__init__(message)
        self.rows = rows or []


def expect_no_offences(offences: list[Offence], what: str) -> None:
    """Fail naming the first few offending files and the total count."""
    if not offences:
        return
    shown = "\n".join(f"  {o.file}: {o.problem}" for o in offences[:SHOWN_IN_MESSAGE])
    more = f"\n  ... and {len(offences) - SHOWN_IN_MESSAGE} more" if len(offences) > SHOWN_IN_MESSAGE else ""
    raise GateFailure(
        f"{len(offences)} {what}:\n{shown}{more}",
        rows=[{"file": o.file, "problem": o.problem} for o in offences],
    )
