"""Errors of the training package: one root, narrow subclasses that also inherit the matching built-in."""

from __future__ import annotations

__all__ = [
    "TrainingError",
    "DatasetNotFoundError",
    "DatasetLayoutError",
    "DataReadError",
    "EvaluationError",
    "BureauDataError",
]


class TrainingError(Exception):
    """Root of every error raised by :mod:`training`."""


class DatasetNotFoundError(TrainingError, FileNotFoundError):
    """The data folder, or a requested set inside it, does not exist."""

    def __str__(self) -> str:  # OSError formats (errno, strerror) tuples; keep the one-line message
        return str(self.args[0]) if self.args else "dataset not found"


class DatasetLayoutError(TrainingError, ValueError):
    """A set does not follow ``<set>/A|B|label/<name>.<ext>`` (orphan files, duplicate stems, mismatched grids)."""


class DataReadError(TrainingError, OSError):
    """An image or mask file cannot be read or holds values it must not (e.g. a label that is not 0/255)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "cannot read data file"


class EvaluationError(TrainingError, RuntimeError):
    """A model could not be run on a pair (missing bands, wrong output shape)."""


class BureauDataError(TrainingError, ValueError):
    """The inputs of a bureau fine-tune (two images, a 图斑 label file, a holdout) do not fit together:
    no overlap, an unreadable or empty label file, a CRS that cannot be reprojected, bands the model lacks."""
