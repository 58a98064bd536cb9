"""Judging: a requirement against what was measured, and a run's outcomes against what was required.

``judge`` turns one measurement into a pass or a :class:`GateFailure` whose message
reads well in a terminal and in the report. ``verdict`` decides cleared / blocked /
incomplete by comparing the requirements the registry and policy set for this release
with the checks that actually ran and passed, never by guessing from what happened to run.
"""

from __future__ import annotations

from synthgate.gate.criteria import AT_LEAST
from synthgate.gate.measurements import Measurement
from synthgate.gate.policy import Requirement

SHOWN_IN_MESSAGE = 5
JUDGED_ON = {"point": "point estimate", "ci_low": "lower CI bound", "ci_high": "upper CI bound"}


class GateFailure(AssertionError):
    """A failed gate criterion; ``rows`` is the table of evidence the report attaches."""

    def __init__(self, message: str, rows: list[dict] | None = None):
        super().__init__(message)
        self.rows = rows or []


def title(requirement: Requirement) -> str:
    where = f"{requirement.class_name}: " if requirement.class_name is not None else ""
    return where + requirement.spec.description


def judge(requirement: Requirement, measured: Measurement, min_positives: int, min_negatives: int) -> None:
    """Pass, or raise GateFailure saying what was measured, the bound and why it fails."""
    spec = requirement.spec
    if measured.problem:
        raise GateFailure(f"{title(requirement)} could not be measured: {measured.problem}", measured.rows)
    if spec.fixed is not None:
        _expect_no_offences(requirement, measured)
        return
    for count, minimum, what in ((measured.positives, min_positives, "positives"),
                                 (measured.negatives, min_negatives, "negatives")):
        if count is not None and count < minimum:
            raise GateFailure(f"{title(requirement)} rests on {count} {what}; the gate policy needs at least {minimum} "
                              f"for a judged number", measured.rows)
    number = measured.number(requirement.judge)
    if number is None:
        raise GateFailure(f"{title(requirement)} could not be measured: the value is undefined", measured.rows)
    passes = number >= requirement.bound if spec.direction == AT_LEAST else number <= requirement.bound
    if passes:
        return
    word = "below the required minimum" if spec.direction == AT_LEAST else "above the allowed maximum"
    shown = _shown(measured)
    basis = JUDGED_ON[requirement.judge] if measured.has_interval else "value"
    beside = f" ({measured.baseline_text})" if measured.baseline_text else ""
    raise GateFailure(
        f"{title(requirement)} is {shown}{beside}; its {basis} {number:.3f} is {word} {requirement.bound:.3f} "
        f"(set by the {requirement.source})", measured.rows,
    )


def _shown(measured: Measurement) -> str:
    if measured.has_interval:
        return f"{measured.value:.3f} [{measured.low:.3f}, {measured.high:.3f}] (95% CI)"
    return f"{measured.value:.3f}"


def _expect_no_offences(requirement: Requirement, measured: Measurement) -> None:
    """Fail naming the first few offending files and the total count."""
    rows = measured.rows
    if not rows and not measured.value:
        return
    shown = "\n".join(f"  {row['file']}: {row['problem']}" for row in rows[:SHOWN_IN_MESSAGE])
    more = f"\n  ... and {len(rows) - SHOWN_IN_MESSAGE} more" if len(rows) > SHOWN_IN_MESSAGE else ""
    raise GateFailure(f"{len(rows)} {requirement.spec.description}:\n{shown}{more}", rows)


def verdict(required: list[str], outcomes: dict[str, list[str]], partial_reasons: list[str]) -> tuple[str, list[str]]:
    """cleared / blocked / incomplete, and why in plain words.

    ``required`` are requirement keys; ``outcomes`` maps each key that ran to the outcome of
    every test that judged it. Any failure blocks; cleared needs every required key to have
    run and passed in every test that judged it, in a run that was not narrowed or altered.
    """
    failed = sorted(key for key, seen in outcomes.items() if any(o in ("failed", "error") for o in seen))
    if failed:
        shown = ", ".join(failed[:SHOWN_IN_MESSAGE]) + (" ..." if len(failed) > SHOWN_IN_MESSAGE else "")
        return "blocked", [f"{len(failed)} of {len(required)} required gate checks failed: {shown}"]
    reasons = list(partial_reasons)
    not_run = [key for key in required if key not in outcomes]
    if not_run:
        reasons.append(f"{len(not_run)} of {len(required)} required gate checks did not run: "
                       + ", ".join(not_run[:SHOWN_IN_MESSAGE]) + (" ..." if len(not_run) > SHOWN_IN_MESSAGE else ""))
    not_passed = [key for key in required if key in outcomes and any(o != "passed" for o in outcomes[key])]
    if not_passed:
        reasons.append(f"{len(not_passed)} required gate checks were not evaluated: {', '.join(not_passed[:SHOWN_IN_MESSAGE])}")
    if not required:
        reasons.append("no gate check is required: the policy requires nothing")
    if reasons:
        return "incomplete", reasons
    return "cleared", [f"all {len(required)} required gate checks passed"]
