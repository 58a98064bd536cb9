"""Leakage: the evaluating model never saw the generator's data (one test per criterion of the registry)."""

from synthgate.checks import define_checks

define_checks(globals(), "leakage")
