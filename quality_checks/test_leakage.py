"""Leakage: the evaluating model never saw the generator's data. The checks ship with synthgate (synthgate.checks)."""

from synthgate.checks.test_leakage import *  # noqa: F403
