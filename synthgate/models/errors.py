"""The errors of the models room, in one place below every other models module.

Why here: the card schema, the weights table and the loaders all raise them, and a
caller (the CLI, the pytest plugin, the release evaluation) catches them as one family
(``ModelLoadError``) whichever module raised them; keeping them apart from those
modules lets each import them without importing the others.
"""

from __future__ import annotations


class ModelLoadError(Exception):
    """A model could not be loaded (or was refused) as asked."""


class WeightsNotFoundError(ModelLoadError):
    """The weights file is not on disk; synthgate never downloads it."""


class ModelCardError(ModelLoadError):
    """A model card is missing, unreadable or malformed."""


class ModelSpecError(ValueError):
    """A model spec (``[model]`` table or ``ModelSpec``) is invalid."""
