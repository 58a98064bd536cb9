"""Fidelity: a leakage-free model scores synthetic images like real ones (one test per criterion of the registry)."""

from synthgate.checks import define_checks

define_checks(globals(), "fidelity")
