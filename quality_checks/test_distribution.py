"""Distribution: synthetic images are distributed like real ones. The checks ship with synthgate (synthgate.checks)."""

from synthgate.checks.test_distribution import *  # noqa: F403
