"""Fidelity: a leakage-free model scores synthetic images like real ones. The checks ship with synthgate (synthgate.checks)."""

from synthgate.checks.test_fidelity import *  # noqa: F403
