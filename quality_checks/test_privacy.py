"""Privacy: synthetic images are not copies of training images. The checks ship with synthgate (synthgate.checks)."""

from synthgate.checks.test_privacy import *  # noqa: F403
