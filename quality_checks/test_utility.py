"""Utility: training on synthetic data helps, or does not hurt. The checks ship with synthgate (synthgate.checks)."""

from synthgate.checks.test_utility import *  # noqa: F403
