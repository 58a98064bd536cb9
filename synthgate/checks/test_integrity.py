"""Integrity: image files, manifest and labels are sound (one test per criterion of the registry)."""

from synthgate.checks import define_checks

define_checks(globals(), "integrity")
