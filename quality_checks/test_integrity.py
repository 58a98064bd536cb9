"""Integrity: image files, manifest and labels are sound. The checks ship with synthgate (synthgate.checks)."""

from synthgate.checks.test_integrity import *  # noqa: F403
