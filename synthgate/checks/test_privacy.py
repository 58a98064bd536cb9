"""Privacy: synthetic images are not copies of training images (one test per criterion of the registry)."""

from synthgate.checks import define_checks

define_checks(globals(), "privacy")
