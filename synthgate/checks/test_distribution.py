"""Distribution: synthetic images are distributed like real ones (one test per criterion of the registry)."""

from synthgate.checks import define_checks

define_checks(globals(), "distribution")
