"""The gate policy: which criteria a release must pass, and how each is judged.

The policy belongs to whoever runs the gate (a ``gate-policy.toml`` in the repository
that holds the releases, or ``--policy``), not to the release: a release's
``[criteria]`` may only make a threshold stricter or add one, and anything looser
is an error naming both files and the key. With no policy file the built-in default
(``default-policy.toml`` beside this module) applies: every class is judged on the
relative criteria (synthetic vs real), never on nothing.

An unlabelled release (``[release] labelled = false``, from an unconditional generator)
is never required to pass a criterion that needs labels (``"labels"`` in its ``needs``):
those are reported as not applicable. ``[unlabelled.criteria]`` (same form as
``[criteria]``) adds or overrides thresholds for unlabelled releases only; a label-based
criterion there, or in an unlabelled release's own ``[criteria]``, is an error.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from synthgate.config.release import Release
from synthgate.config.settings import (
    RANGES,
    DistributionSpec,
    IntegritySpec,
    PrivacySpec,
    StatisticsSpec,
    UtilitySpec,
    checked_number,
    read_grid,
    read_spec,
)
from synthgate.config.toml import ConfigError, Table, read_toml
from synthgate.gate.criteria import AT_LEAST, INPUTS, JUDGES, REGISTRY, CriterionSpec
from synthgate.storage import sha256_file

POLICY_NAME = "gate-policy.toml"
DEFAULT_POLICY = Path(__file__).resolve().parent / "default-policy.toml"
EVERY_CLASS = "*"
MEMORISATION_CRITERIA = ("no_memorised_training_images", "no_copies_of_reference_images")


@dataclass(frozen=True)
class Threshold:
    """A bound on one criterion and the number (point or CI bound) that must clear it."""

    bound: float
    judge: str
    source: str  # the file that set it


@dataclass(frozen=True)
class Requirement:
    """One criterion this release must pass: for one class, or for the whole release (``class_name`` None)."""

    criterion: str
    class_name: str | None
    bound: float
    judge: str
    source: str  # "policy", "release" or "fixed" (a bound no file can change)

    @property
    def spec(self) -> CriterionSpec:
        return REGISTRY[self.criterion]

    @property
    def key(self) -> str:
        return f"{self.criterion}[{self.class_name}]" if self.class_name is not None else self.criterion


@dataclass(frozen=True)
class Policy:
    file: Path
    sha256: str
    builtin: bool
    thresholds: dict[tuple[str, str | None], Threshold]  # (criterion, class name, "*" or None) -> threshold
    min_positives: int
    min_negatives: int
    accept_missing: frozenset[str]
    grid: UtilitySpec
    statistics: StatisticsSpec
    integrity: IntegritySpec
    distribution: DistributionSpec
    max_shift: int
    memorisation_resolution: int
    # [unlabelled.criteria]: what an unlabelled release must pass besides (or instead of) [criteria]; never label-based
    unlabelled_thresholds: dict[tuple[str, str | None], Threshold] = field(default_factory=dict)


def find_policy(explicit: str | None, rootdir: Path, fallback: Path | None = None) -> Path:
    """``--policy`` / ini, else ``gate-policy.toml`` in the rootdir, else ``fallback``, else the built-in default."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(path, "", "policy file not found")
        return path.resolve()
    here = rootdir / POLICY_NAME
    if here.is_file():
        return here.resolve()
    return fallback or DEFAULT_POLICY


def load_policy(path: Path) -> Policy:
    top = Table(read_toml(path), path)
    about = top.table("policy", {})
    about.get("name", str, "")
    about.get("description", str, "")
    minimum = {key: checked_number(about, key, int, 30, 1, 100_000) for key in ("min_positives", "min_negatives")}
    accept = frozenset(about.get_list("accept_missing", str, []))
    unknown = accept - (set(INPUTS) - {"labels"})
    if "labels" in unknown:
        raise about.error("accept_missing", "'labels' is not an input a policy accepts missing: label-based criteria "
                                            "never apply to an unlabelled release (see [unlabelled.criteria])")
    if unknown:
        raise about.error("accept_missing", f"unknown input(s) {sorted(unknown)}; inputs are "
                                            f"{sorted(set(INPUTS) - {'labels'})}")
    about.finish()
    thresholds = _thresholds(top.table("criteria", {}), path.name, allow_every_class=True)
    unlabelled = _unlabelled_thresholds(top.table("unlabelled", {}), path.name)
    if not thresholds and not unlabelled:  # an emptied or truncated file would clear on the fixed checks alone
        raise ConfigError(path, "criteria", "the policy sets no criteria: it must say what a release has to pass "
                                            f"(start from {DEFAULT_POLICY.name}, synthgate's built-in policy)")
    settings = top.table("settings", {})
    policy = Policy(
        file=path, sha256=sha256_file(path), builtin=path == DEFAULT_POLICY, thresholds=thresholds,
        min_positives=minimum["min_positives"], min_negatives=minimum["min_negatives"], accept_missing=accept,
        grid=read_grid(top.table("utility", {})),
        statistics=read_spec(StatisticsSpec, settings.table("statistics", {})),
        integrity=read_spec(IntegritySpec, settings.table("integrity", {})),
        distribution=read_spec(DistributionSpec, settings.table("distribution", {})),
        max_shift=checked_number(settings, "memorisation_max_shift", int, 4, *RANGES["max_shift"]),
        memorisation_resolution=checked_number(settings, "memorisation_resolution", int, PrivacySpec.resolution,
                                               *RANGES["resolution"]),
        unlabelled_thresholds=unlabelled,
    )
    settings.finish()
    top.finish()
    return policy


def _unlabelled_thresholds(table: Table, source: str) -> dict:
    """``[unlabelled.criteria]``: thresholds for unlabelled releases only; a label-based criterion there is an error."""
    criteria = table.table("criteria", {})
    found = _thresholds(criteria, source, allow_every_class=True)
    table.finish()
    for name, scope in found:
        if not applies_unlabelled(REGISTRY[name]):
            raise criteria.error(f"{scope}.{name}" if scope else name, f"'{name}' needs labels, and an unlabelled "
                                 "release has none: it cannot be required of one")
    return found


def applies_unlabelled(spec: CriterionSpec) -> bool:
    """Whether a criterion can be measured without labels (label-based ones do not apply to an unlabelled release)."""
    return "labels" not in spec.needs


def _threshold(table: Table, name: str, source: str) -> Threshold:
    """``name = 0.8`` or ``name = { min = 0.8, judge = "ci_low" }`` (``max`` for at-most criteria)."""
    spec = REGISTRY[name]
    if spec.fixed is not None:
        raise table.error(name, f"'{name}' always requires {spec.fixed:g} offending files: it has no threshold to set")
    side = "min" if spec.direction == AT_LEAST else "max"
    value = table.get(name, (float, dict))
    judge = spec.judge
    if isinstance(value, dict):
        inner = table.table(name)
        judge = inner.get("judge", str, judge, choices=JUDGES)
        bound = inner.get(side, float)
        inner.finish()
    else:
        bound = value
    low, high = spec.bounds
    if not (math.isfinite(bound) and low <= bound <= high):
        raise table.error(name, f"{side} must be a finite number in [{low}, {high}], got {bound!r}")
    return Threshold(bound, judge, source)


def _thresholds(table: Table, source: str, allow_every_class: bool) -> dict:
    """``[criteria]``: release-level criteria as keys, per-class ones in a table per class (or ``"*"``)."""
    found = {}
    for key in list(table.data):
        if key in REGISTRY and not REGISTRY[key].per_class:
            found[(key, None)] = _threshold(table, key, source)
            continue
        if key in REGISTRY:
            raise table.error(key, f"'{key}' is judged per class: put it under [criteria.\"<class>\"]")
        if key == EVERY_CLASS and not allow_every_class:
            raise table.error(key, "'*' (every class) belongs in the gate policy; name the class here")
        per_class = table.table(key)
        for name in list(per_class.data):
            if name not in REGISTRY or not REGISTRY[name].per_class:
                per_class.finish_with([n for n, s in REGISTRY.items() if s.per_class])
            found[(name, key)] = _threshold(per_class, name, source)
    return found


def requirements(policy: Policy, release: Release) -> list[Requirement]:
    """Every criterion this release must pass: fixed checks, the policy's, then the release's stricter ones.

    A release threshold looser than the policy's, or judged more leniently, is a ConfigError
    naming both files. Criteria whose input the release lacks stay required (and fail)
    unless the policy accepts that input missing. Label-based criteria are never required
    of an unlabelled release (see :func:`not_applicable`).
    """
    return [r for r in _everything(policy, release)
            if applicable(r.spec, release) and not set(missing_inputs(r.spec, release)) & policy.accept_missing]


def not_applicable(policy: Policy, release: Release) -> list[Requirement]:
    """What the policy sets that does not apply to this release: label-based criteria of an unlabelled release.

    Reported as not applicable (``criteria.NOT_APPLICABLE_UNLABELLED``), never required.
    """
    return [r for r in _everything(policy, release) if not applicable(r.spec, release)]


def applicable(spec: CriterionSpec, release: Release) -> bool:
    """Whether a criterion applies to a release at all (an unlabelled release has no labels to judge)."""
    return release.labelled or applies_unlabelled(spec)


def _everything(policy: Policy, release: Release) -> list[Requirement]:
    """Fixed checks, the policy's thresholds ([unlabelled.criteria] too for an unlabelled release), the release's."""
    chosen: dict[tuple[str, str | None], Threshold] = {}
    tables = [policy.thresholds] + ([] if release.labelled else [policy.unlabelled_thresholds])
    for thresholds in tables:
        every_class_first = sorted(thresholds.items(), key=lambda item: item[0][1] != EVERY_CLASS)
        for (name, scope), threshold in every_class_first:
            for class_name in (release.class_names if scope == EVERY_CLASS else (scope,)):
                chosen[(name, class_name)] = threshold
    ours = _thresholds(Table(release.criteria, release.config_file, "criteria"), "release", allow_every_class=False)
    for (name, class_name), threshold in ours.items():
        if class_name is not None and class_name not in release.class_names:
            raise ConfigError(release.config_file, f"criteria.{class_name}", "not a class this release declares")
        if not applicable(REGISTRY[name], release):
            where = f"criteria.{class_name}.{name}" if class_name else f"criteria.{name}"
            raise ConfigError(release.config_file, where, f"'{name}' needs labels, and this release is unlabelled "
                              "([release] labelled = false): it cannot be required of it")
        current = chosen.get((name, class_name))
        if current is not None:
            _check_tighter(REGISTRY[name], threshold, current, release, policy, name, class_name)
        chosen[(name, class_name)] = threshold
    fixed = [Requirement(s.name, None, s.fixed, "point", "fixed") for s in REGISTRY.values() if s.fixed is not None]
    judged = [Requirement(name, class_name, t.bound, t.judge, "release" if t.source == "release" else "policy")
              for (name, class_name), t in chosen.items()]
    return fixed + sorted(judged, key=lambda r: (list(REGISTRY).index(r.criterion), r.class_name or ""))


def _check_tighter(spec, mine: Threshold, policy_threshold: Threshold, release, policy, name, class_name) -> None:
    where = f"criteria.{class_name}.{name}" if class_name else f"criteria.{name}"
    if not spec.stricter_bound(mine.bound, policy_threshold.bound):
        word = "lower" if spec.direction == AT_LEAST else "higher"
        raise ConfigError(release.config_file, where, f"{mine.bound:g} is {word} than the gate policy's "
                          f"{policy_threshold.bound:g} ({policy.file}): a release may only make thresholds stricter")
    if spec.strictness(mine.judge) < spec.strictness(policy_threshold.judge):
        raise ConfigError(release.config_file, where, f"judge {mine.judge!r} is more lenient than the gate policy's "
                          f"{policy_threshold.judge!r} ({policy.file}): a release may only judge more strictly")


def missing_inputs(spec: CriterionSpec, release: Release) -> list[str]:
    """The inputs a criterion needs that the release does not give."""
    present = {"reference": release.reference is not None, "model": bool(release.model),
               "source_images": release.source_images is not None, "labels": release.labelled}
    return [need for need in spec.needs if not present[need]]


def apply(policy: Policy, release: Release, required: list[Requirement], grid_overrides: dict) -> Release:
    """The release as the policy measures it: the policy's settings and grid (plus any command-line grid).

    Memorisation pairs are flagged at the strictest similarity limit required, so the
    evidence the report lists matches what is judged.
    """
    privacy_limits = [r.bound for r in required if r.criterion in MEMORISATION_CRITERIA]
    privacy = PrivacySpec(pixel_similarity_max=min(privacy_limits, default=PrivacySpec.pixel_similarity_max),
                          max_shift=policy.max_shift, resolution=policy.memorisation_resolution)
    classes = tuple(dataclasses.replace(c, min_count=max(c.min_count, policy.min_positives)) if release.labelled else c
                    for c in release.classes)
    return dataclasses.replace(
        release, classes=classes, integrity=policy.integrity, statistics=policy.statistics,
        distribution=policy.distribution, privacy=privacy, utility=dataclasses.replace(policy.grid, **grid_overrides),
    )
