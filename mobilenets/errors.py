"""Errors users can act on.

Every failure a user can cause (bad model name, missing data, corrupt file,
wrong shape) raises a subclass of `MobilenetsError` whose message is one line
saying what is wrong and what to do. The CLI scripts print that line and exit
non-zero instead of showing a traceback.
"""

import re


def first_line(error, limit=300):
    """The first line of an exception's message (runs of spaces made one), without TensorFlow's
    {{function_node ...}} prefix, for quoting a lower-level failure inside a one-line error."""
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", getattr(error, "message", None) or str(error)).strip()
    return (" ".join(text.splitlines()[0].split()) if text else type(error).__name__)[:limit]


class MobilenetsError(Exception):
    """Base class: a user-facing, one-line error."""


class ModelError(MobilenetsError):
    """Unknown model name or impossible architecture configuration."""


class ConfigError(MobilenetsError):
    """Bad hyperparameter key, value or type."""


class DataError(MobilenetsError):
    """Missing, corrupt or inconsistent dataset."""


class CheckpointError(MobilenetsError):
    """Missing, truncated or foreign checkpoint / saved model."""


class ExportError(MobilenetsError):
    """TFLite export or parity failure."""


class TrainingDiverged(MobilenetsError):
    """The loss became NaN or infinite."""
