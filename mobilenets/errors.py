"""Errors users can act on.

Every failure a user can cause (bad model name, missing data, corrupt file,
wrong shape) raises a subclass of `MobilenetsError` whose message is one line
saying what is wrong and what to do. The CLI scripts print that line and exit
non-zero instead of showing a traceback.
"""


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
