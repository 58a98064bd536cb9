"""Utility: training on synthetic data helps, or does not hurt (one test per criterion of the registry)."""

from synthgate.checks import define_checks

define_checks(globals(), "utility")
