"""How the checks measure: tolerances, the retraining grid, bootstrap settings.

These are the gate policy's to set (a release cannot change how it is measured);
each value is validated where it is read: finite, and in range for what it means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from synthgate.config.toml import Table

UTILITY_MODES = ("probe", "finetune", "scratch")


@dataclass(frozen=True)
class IntegritySpec:
    """Tolerances of the integrity checks."""

    blank_std: float = 2.0  # in 8-bit grey levels (scaled for 16-bit images)
    near_duplicate_bits: int = 4


@dataclass(frozen=True)
class UtilitySpec:
    """The retraining grid: learner mode, synthetic:real ratios, real-data sizes, seeds."""

    mode: str = "probe"
    ratios: tuple[float, ...] = (1.0, 2.0, 3.0)
    sizes: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 10  # finetune / scratch modes only


@dataclass(frozen=True)
class DistributionSpec:
    """How the distribution checks measure near-duplicates."""

    duplicate_similarity: float = 0.95  # pixel similarity that makes two images near-duplicates
    max_shift: int = 4  # pixels (at 64 px) a near-duplicate may be moved by
    resolution: int = 128  # pixels a side at which candidate near-duplicates are compared exactly


@dataclass(frozen=True)
class PrivacySpec:
    """How memorisation is searched for; the similarity limit itself is a criterion of the policy."""

    pixel_similarity_max: float = 0.95  # set from the policy's memorisation criteria
    max_shift: int = 4  # pixels (at 64 px) a copy may be moved by
    resolution: int = 128  # pixels a side at which candidate copies are compared exactly


@dataclass(frozen=True)
class StatisticsSpec:
    n_boot: int = 1000
    seed: int = 0


# Valid range of every numeric setting: (low, high), both inclusive.
RANGES = {
    "blank_std": (0.0, 255.0), "near_duplicate_bits": (0, 64), "duplicate_similarity": (0.5, 0.999),
    "max_shift": (0, 12), "pixel_similarity_max": (0.5, 0.999), "n_boot": (100, 100_000), "seed": (0, 2**32 - 1),
    "epochs": (1, 1000), "resolution": (32, 512),
}


def checked_number(table: Table, key: str, kind: type, default, low: float, high: float):
    """A finite number in [low, high] (NaN, inf and out-of-range values are refused, naming the key)."""
    value = table.get(key, (int, float) if kind is float else int, default)
    if isinstance(value, bool) or not math.isfinite(value) or not low <= value <= high:
        raise table.error(key, f"must be a finite number in [{low}, {high}], got {value!r}")
    return kind(value)


def read_spec(kind, table: Table):
    """A settings dataclass of numbers, each key optional with the dataclass default, each range-checked."""
    values = {}
    for f in fields(kind):
        number = float if f.type == "float" else int
        values[f.name] = checked_number(table, f.name, number, f.default, *RANGES[f.name])
    table.finish()
    return kind(**values)


def check_grid(spec: UtilitySpec, error) -> UtilitySpec:
    """Refuse a grid that could make a criterion meaningless; ``error(key, problem)`` builds the exception."""
    if spec.mode not in UTILITY_MODES:
        raise error("mode", f"expected one of {', '.join(UTILITY_MODES)}, got {spec.mode!r}")
    if not spec.sizes or any(not (math.isfinite(s) and 0 < s <= 1) for s in spec.sizes):
        raise error("sizes", f"fractions of the real training set in (0, 1], got {list(spec.sizes)}")
    if not spec.ratios or any(not (math.isfinite(r) and 0.05 <= r <= 100) for r in spec.ratios):
        raise error("ratios", f"synthetic:real ratios in [0.05, 100], got {list(spec.ratios)}")
    if len(set(spec.seeds)) < 3 or any(not 0 <= s < 2**32 for s in spec.seeds):
        raise error("seeds", f"at least 3 distinct seeds in [0, 2^32), got {list(spec.seeds)}")
    if not 1 <= spec.epochs <= 1000:
        raise error("epochs", f"must be in [1, 1000], got {spec.epochs}")
    return spec


def read_grid(table: Table) -> UtilitySpec:
    defaults = UtilitySpec()
    spec = UtilitySpec(
        mode=table.get("mode", str, defaults.mode, choices=UTILITY_MODES),
        ratios=tuple(float(v) for v in table.get_list("ratios", (int, float), list(defaults.ratios))),
        sizes=tuple(float(v) for v in table.get_list("sizes", (int, float), list(defaults.sizes))),
        seeds=tuple(table.get_list("seeds", int, list(defaults.seeds))),
        epochs=table.get("epochs", int, defaults.epochs),
    )
    table.finish()
    return check_grid(spec, table.error)
