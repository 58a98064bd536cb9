"""How each gate criterion reads its number from a release evaluation.

One small function per kind of criterion, each returning a :class:`Measurement`:
the number judged (with its interval where there is one), the real-vs-real baseline
beside it, the evidence rows the report attaches, and, when the number could not be
measured, why. They read what the evaluation computes; they never judge.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from synthgate.evaluation.leakage_findings import RELEASE_CHECKS
from synthgate.measures.bootstrap import Estimate


@dataclass(frozen=True)
class Measurement:
    """The number a criterion is judged on; ``problem`` says why there is none."""

    value: float | None = None
    low: float | None = None
    high: float | None = None
    n: int | None = None
    positives: int | None = None
    negatives: int | None = None
    baseline: float | None = None
    baseline_text: str = ""
    rows: list[dict] = field(default_factory=list)
    problem: str = ""
    note: str = ""
    missing_input: str = ""  # the input whose absence is the problem (the gate policy may accept it missing)

    @classmethod
    def of(cls, estimate: Estimate, **extra) -> Measurement:
        counts = {key: getattr(estimate, key, None) for key in ("positives", "negatives")}
        return cls(value=estimate.value, low=estimate.low, high=estimate.high, n=estimate.n, **counts, **extra)

    @classmethod
    def missing(cls, problem: str) -> Measurement:
        return cls(problem=problem)

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def number(self, judge: str) -> float | None:
        """The number that must clear the bound: the point estimate or one CI bound."""
        chosen = {"point": self.value, "ci_low": self.low, "ci_high": self.high}[judge]
        if chosen is None and judge != "point":
            chosen = self.value  # no interval (e.g. a count): the point is all there is
        return None if chosen is None or math.isnan(chosen) else chosen


# --------------------------------------------------------------------------- files and leakage


def _count(offences) -> Measurement:
    return Measurement(value=float(len(offences)), rows=[{"file": o.file, "problem": o.problem} for o in offences])


def integrity(check: str):
    def measure(evaluation, class_name=None) -> Measurement:
        return _count(evaluation.integrity.problems[check])

    return measure


def every_image_evaluated(evaluation, class_name=None) -> Measurement:
    """Every manifest row that passed the file checks is the very image every model-based check sees (one path identity)."""
    release, facts = evaluation.release, evaluation.integrity.facts
    decoded = [row.path for row in release.manifest.rows if row.path in facts]
    seen = [path.relative_to(release.root).as_posix() for path in evaluation.synthetic.paths]
    rows = [{"file": path, "problem": "passed the file checks but is not evaluated by the model-based checks"}
            for path in sorted(set(decoded) - set(seen))]
    rows += [{"file": path, "problem": "evaluated by the model-based checks but not a sound manifest row"}
             for path in sorted(set(seen) - set(decoded))]
    if len(seen) != len(decoded) and not rows:
        rows.append({"file": str(release.manifest.file.name),
                     "problem": f"{len(decoded)} sound rows but {len(seen)} images evaluated"})
    return Measurement(value=float(len(rows)), rows=rows, n=len(seen))


def leakage(check: str):
    """Offences of one leakage check, with the note saying what it rests on (or why part of it could not run)."""

    def measure(evaluation, class_name=None) -> Measurement:
        from_release = check in RELEASE_CHECKS
        found = (evaluation.leakage_with_release if from_release else evaluation.leakage_among_data_sets).get(check)
        if found is None:  # only when an input is missing, which the session reports before measuring
            return Measurement.missing("its inputs are missing")
        if getattr(found, "problem", ""):
            return Measurement.missing(found.problem)
        if getattr(found, "missing", ""):
            return Measurement(problem=found.note, missing_input=found.missing)
        return dataclasses.replace(_count(found), note=getattr(found, "note", ""))

    return measure


# --------------------------------------------------------------------------- fidelity


def pretrained(metric: str):
    def measure(evaluation, class_name: str) -> Measurement:
        result = _pretrained(evaluation, class_name)
        if isinstance(result, Measurement):
            return result
        real = result.real[metric]
        return Measurement.of(result.synthetic[metric], baseline=real.value, baseline_text=f"real test: {real}")

    return measure


def synthetic_minus_real(evaluation, class_name: str) -> Measurement:
    result = _pretrained(evaluation, class_name)
    if isinstance(result, Measurement):
        return result
    return Measurement.of(result.auroc_difference, baseline=0.0, baseline_text="0 when synthetic scores like real")


def _pretrained(evaluation, class_name: str):
    if class_name not in evaluation.release.class_names:
        return Measurement.missing(f"the release has no class {class_name!r}, which the policy requires")
    result = evaluation.pretrained[class_name]
    return Measurement.missing(result.problem) if result.problem else result


# --------------------------------------------------------------------------- utility


def _cells(evaluation, class_name: str, framework: str, largest_only: bool):
    """(cells judged, cells the release could not fill), or a Measurement saying why none can be judged.

    The grid adapts to the release: a cell that needs more synthetic images than the
    release holds is left out of the judgement and named in the note; only when no
    cell of the framework can be filled is there nothing to judge (which fails).
    ``largest_only``: judge the largest real-data size the release fills (for R+S,
    every ratio filled at that size).
    """
    if class_name not in evaluation.release.class_names:
        return Measurement.missing(f"the release has no class {class_name!r}, which the policy requires")
    cells = [c for c in evaluation.utility if c.framework == framework]
    if not cells:
        return Measurement.missing(f"the retraining grid has no {framework} cell")
    unfilled = [c for c in cells if c.unavailable]
    judged = [c for c in cells if not c.unavailable]
    if not judged:
        return Measurement.missing("; ".join(f"{c.label}: {c.unavailable}" for c in unfilled))
    if largest_only:
        judged = [c for c in judged if c.size == max(c.size for c in judged)]
    for cell in judged:  # every cell judged must have run on something meaningful: none may be dropped
        if framework != "R" and cell.n_synthetic < 1:
            return Measurement.missing(f"{cell.label}: holds no synthetic image")
        if class_name in cell.problems:
            return Measurement.missing(f"{cell.label}: {cell.problems[class_name]}")
    return judged, unfilled


def _worst(judged_and_unfilled, value_of, baseline_text: str) -> Measurement:
    cells, unfilled = judged_and_unfilled
    worst_cell = min(cells, key=lambda c: value_of(c).value)
    rows = [{"cell": c.label, "value": f"{value_of(c)}"} for c in cells]
    rows += [{"cell": c.label, "value": f"not judged: {c.unavailable}"} for c in unfilled]
    note = f"worst cell: {worst_cell.label}"
    if unfilled:
        note += f"; {len(unfilled)} cell(s) of the grid not judged: the release is too small to fill them"
    return Measurement.of(value_of(worst_cell), rows=rows, baseline_text=baseline_text, note=note)


def train_on_synthetic(evaluation, class_name: str) -> Measurement:
    cells = _cells(evaluation, class_name, "S", largest_only=True)
    if isinstance(cells, Measurement):
        return cells
    size = cells[0][0].size
    real = {c.size: c for c in evaluation.utility if c.framework == "R" and not c.unavailable}
    same = real.get(size)
    text = f"R at the same size: {same.auroc_ci[class_name]}" if same and class_name in same.auroc_ci else ""
    return _worst(cells, lambda c: c.auroc_ci[class_name], text)


def versus_real(framework: str, largest_only: bool = True):
    """The worst paired difference from R trained on the same number of real images (same size of the grid)."""

    def measure(evaluation, class_name: str) -> Measurement:
        cells = _cells(evaluation, class_name, framework, largest_only)
        if isinstance(cells, Measurement):
            return cells
        return _worst(cells, lambda c: c.versus_real[class_name], "0 when adding synthetic data changes nothing")

    return measure


# --------------------------------------------------------------------------- distribution and privacy


def frechet_ratio(evaluation, class_name=None) -> Measurement:
    """The median ratio over patient-wise halvings of the real images, with its 95% range over them; beside it,
    the range a real half spans (what a perfect stand-in would measure)."""
    distribution = evaluation.distribution
    overall = distribution.frechet["all"]
    rows = [{"scope": scope, "synthetic vs real": f"{c.synthetic:.2f}", "real vs real": f"{c.baseline:.2f}",
             "ratio": f"{c.ratio:.2f}", "halvings": len(c.baseline_runs)} for scope, c in distribution.frechet.items()]
    low, high = overall.ratio_interval
    real_low, real_high = overall.baseline_interval
    return Measurement(value=overall.ratio, low=low, high=high, baseline=1.0, rows=rows, n=distribution.n_synthetic,
                       baseline_text=f"{overall.synthetic:.2f} vs real-vs-real {overall.baseline:.2f}; a real half "
                                     f"spans {real_low:.2f}-{real_high:.2f}",
                       note=f"against the {distribution.target}; median and 95% range over "
                            f"{len(overall.baseline_runs)} patient-wise halvings of the real images")


def frechet_in_real_spreads(evaluation, class_name=None) -> Measurement:
    """The Frechet ratio's excess over 1 in units of a real half's: (ratio - 1) / (upper end of the range a real
    half spans - 1). A perfect stand-in measures about 0 and a real half at most 1, whatever the sample sizes, so
    a limit in these units is a multiple of the real-vs-real interval rather than a fixed ratio."""
    overall = evaluation.distribution.frechet["all"]
    real_low, real_high = overall.baseline_interval
    spread = real_high - 1
    if not spread > 0:
        return Measurement.missing(f"the real halves' Frechet distances do not vary (a real half spans "
                                   f"{real_low:.2f}-{real_high:.2f} of their median): no unit to measure in")
    low, high = overall.ratio_interval
    ratio = frechet_ratio(evaluation)
    return dataclasses.replace(ratio, value=(overall.ratio - 1) / spread, low=(low - 1) / spread,
                               high=(high - 1) / spread, baseline=1.0,
                               baseline_text=f"Frechet ratio {overall.ratio:.2f} [{low:.2f}, {high:.2f}]; a real half "
                                             f"spans {real_low:.2f}-{real_high:.2f}, so one unit is {spread:.2f}")


def detectability(evaluation, class_name=None) -> Measurement:
    distribution = evaluation.distribution
    baseline = distribution.baseline_detectability
    return Measurement.of(distribution.detectability, baseline=baseline.value, baseline_text=f"real vs real: {baseline}",
                          note=f"against the {distribution.target}")


def duplicate_fraction(evaluation, class_name=None) -> Measurement:
    distribution = evaluation.distribution
    fraction = distribution.duplicate_fraction
    rows = [{"cluster": k + 1, "images": len(c), "examples": ", ".join(p.rsplit("/", 1)[-1] for p in c[:5])}
            for k, c in enumerate(distribution.duplicate_clusters)]
    return Measurement(value=fraction.synthetic, baseline=fraction.baseline, rows=rows, n=distribution.n_synthetic,
                       baseline_text=f"real: {fraction.baseline:.3f}",
                       note=f"{len(distribution.duplicate_clusters)} clusters")


def copies_of(real_set: str):
    def measure(evaluation, class_name=None) -> Measurement:
        privacy = evaluation.privacy
        if real_set not in privacy.matches:
            return Measurement.missing(f"no {real_set} to compare with")
        flagged = [p for p in privacy.flagged if p.real_set == real_set]
        rows = [{"synthetic": p.synthetic, "real": p.real, "similarity": f"{p.similarity:.4f}",
                 "feature similarity": f"{p.feature_similarity:.4f}"} for p in flagged]
        baseline = privacy.baseline[real_set]
        return Measurement(value=float(privacy.matches[real_set][0].max()), baseline=baseline, rows=rows,
                           baseline_text=f"held-out real images reach {baseline:.3f}",
                           note=f"{len(flagged)} synthetic images above the limit")

    return measure


# --------------------------------------------------------------------------- predicted prevalence


def predicted_prevalence(evaluation, class_name: str) -> Measurement:
    """|synthetic share - real test share| of images the model calls positive (no labels needed)."""
    from synthgate.evaluation.prevalence import absolute

    if class_name not in evaluation.release.class_names:
        return Measurement.missing(f"the release has no class {class_name!r}, which the policy requires")
    result = evaluation.prevalence[class_name]
    if result.problem:
        return Measurement.missing(result.problem)
    value, low, high = absolute(result.difference)
    shares = [("synthetic", result.synthetic), (result.real_set, result.real)]
    shares += [("real reference test images", result.reference_test)] if result.reference_test is not None else []
    rows = [{"set": name, "called positive": f"{estimate}", "images": estimate.n} for name, estimate in shares]
    beside = "" if result.reference_test is None else f"; real reference test {result.reference_test.value:.3f}"
    declared = "" if result.declared is None else f"; labelled positive {result.declared:.3f}"
    return Measurement(value=value, low=low, high=high, n=result.difference.n, baseline=result.real.value, rows=rows,
                       baseline_text=f"called positive: synthetic {result.synthetic.value:.3f} vs {result.real_set} "
                                     f"{result.real.value:.3f}{beside}{declared}",
                       note=f"synthetic minus real {result.difference}; threshold {result.threshold:.3f} "
                            "chosen on real validation images")
