"""Turning findings into gate verdicts that read well in a terminal and in the report."""

from __future__ import annotations

import math
from dataclasses import dataclass

from synthgate.evaluation.integrity import Offence
from synthgate.measures.metrics import Estimate
from synthgate.config.release import CRITERIA, Criterion

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


def judged_number(criterion: Criterion, estimate: Estimate) -> float:
    return {"point": estimate.value, "ci_low": estimate.low, "ci_high": estimate.high}[criterion.judge]


def expect_criterion(criterion: Criterion, estimate: Estimate | None, problem: str = "") -> None:
    """Fail unless the judged number (point or CI bound) reaches the criterion's minimum."""
    description = CRITERIA[criterion.name][1]
    where = f"{criterion.class_name}: {description}"
    if problem or estimate is None or math.isnan(judged_number(criterion, estimate)):
        raise GateFailure(f"{where} could not be measured: {problem or 'undefined value'}")
    judged = judged_number(criterion, estimate)
    if judged < criterion.minimum:
        basis = {"point": "point estimate", "ci_low": "lower CI bound", "ci_high": "upper CI bound"}[criterion.judge]
        raise GateFailure(
            f"{where} is {estimate} (95% CI); its {basis} {judged:.3f} is below the required {criterion.minimum:.3f}",
            rows=[{"class": criterion.class_name, "criterion": criterion.name, "value": f"{estimate.value:.4f}",
                   "ci": f"[{estimate.low:.4f}, {estimate.high:.4f}]", "judged on": basis,
                   "minimum": criterion.minimum}],
        )


def measure(evaluation, criterion: Criterion) -> tuple[Estimate | None, str]:
    """The estimate a criterion is judged on, or why there is none."""
    name, class_name = criterion.name, criterion.class_name
    if name.startswith("pretrained_") or name == "synthetic_minus_real_auroc":
        result = evaluation.pretrained[class_name]
        if result.problem:
            return None, result.problem
        if name == "synthetic_minus_real_auroc":
            return result.auroc_difference, ""
        return result.synthetic[name.removeprefix("pretrained_")], ""
    cells = [c for c in evaluation.utility if not c.unavailable]
    full = max(c.size for c in cells)
    if name == "train_on_synthetic_auroc":
        chosen = [c for c in cells if c.framework == "S"]
        return _cell_value(chosen, class_name, lambda c: c.auroc_ci[class_name])
    framework = "R+S" if name == "mix_minus_real_auroc" else "S->R"
    chosen = [c for c in cells if c.framework == framework and c.size == full]
    return _cell_value(chosen, class_name, lambda c: c.versus_real[class_name])


def _cell_value(cells, class_name: str, value_of) -> tuple[Estimate | None, str]:
    """The worst (lowest) value over the given cells: every ratio must pass."""
    if not cells:
        return None, "no grid cell could be run (see the utility table)"
    problems = [c.problems[class_name] for c in cells if class_name in c.problems]
    if problems:
        return None, problems[0]
    return min((value_of(c) for c in cells), key=lambda e: e.value), ""


@dataclass(frozen=True)
class Limit:
    """A release-level number (not per class), the most it may be, and the same number for real vs real."""

    value: float
    maximum: float
    baseline: float | None = None


def expect_at_most(limit: Limit, what: str, baseline: str = "", rows: list[dict] | None = None) -> None:
    """Fail when a release-level number exceeds its maximum, with the real-vs-real baseline beside it."""
    if limit.value > limit.maximum:
        beside = f" (real vs real: {baseline})" if baseline else ""
        raise GateFailure(f"{what} is {limit.value:.3f}{beside}, above the allowed {limit.maximum:.3f}", rows=rows)
