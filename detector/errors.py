"""Errors of the detector. One root, narrow subclasses that also inherit the matching built-in."""

from __future__ import annotations

__all__ = [
    "DetectorError",
    "RasterReadError",
    "RasterTooLargeError",
    "CRSMissingError",
    "CRSMismatchError",
    "NoOverlapError",
    "BandMappingError",
    "ResolutionError",
    "OutputExistsError",
    "OutputPathError",
]


class DetectorError(Exception):
    """Root of every error raised by :mod:`detector`."""


class RasterReadError(DetectorError, OSError):
    """The file is not a raster GDAL can read, or it is truncated or corrupt."""


class RasterTooLargeError(DetectorError, ValueError):
    """The raster declares more pixels than its file can hold (decompression bomb) or than allowed."""


class CRSMissingError(DetectorError, ValueError):
    """The raster has no coordinate reference system."""


class CRSMismatchError(DetectorError, ValueError):
    """Two inputs cannot be brought onto one grid."""


class NoOverlapError(DetectorError, ValueError):
    """Before and after images do not overlap, or overlap only in nodata."""


class BandMappingError(DetectorError, ValueError):
    """The bands cannot be identified (red, green, blue[, nir]) or do not match between dates."""


class ResolutionError(DetectorError, ValueError):
    """The ground resolution is outside the configured range."""


class OutputExistsError(DetectorError, FileExistsError):
    """The output exists and ``overwrite`` was not given."""


class OutputPathError(DetectorError, FileNotFoundError):
    """The output cannot be written where asked (missing folder, unknown format)."""
