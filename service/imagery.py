"""Imagery uploads: checksum, validation through the detector, storage. Routes call this module and never
import rasterio themselves; raster checks live in :func:`detector.io.inspect_raster`."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pyproj import CRS
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from service.errors import ImportFormatError, PayloadTooLargeError
from service.geometry import WGS84, reproject

__all__ = ["RasterSummary", "InvalidImageryError", "store_upload", "inspect_upload", "final_path", "move_into_place"]

_CHUNK = 1024 * 1024


class InvalidImageryError(ImportFormatError):
    """The upload is not a georeferenced raster the detector can read."""

    status_code = 422
    title = "Invalid imagery"


@dataclass(frozen=True)
class RasterSummary:
    """Header facts of an uploaded tile; ``footprint`` in EPSG:4326."""

    crs: str
    width: int
    height: int
    band_count: int
    resolution_m: float
    footprint: BaseGeometry
    date: dt.date | None


def store_upload(src: BinaryIO, dest: Path, max_bytes: int, filename: str) -> tuple[int, str]:
    """Copy ``src`` to ``dest`` in chunks, stopping past ``max_bytes``; returns (size, sha256 hex)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with dest.open("wb") as out:
        while chunk := src.read(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                out.close()
                dest.unlink(missing_ok=True)
                raise PayloadTooLargeError(
                    f"{filename!r} is larger than the upload limit of {max_bytes:,} bytes; cut it into tiles "
                    "or raise SOILWATCH_MAX_UPLOAD_BYTES",
                    limit_bytes=max_bytes,
                )
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


def inspect_upload(path: Path, filename: str) -> RasterSummary:
    """Validate ``path`` as a georeferenced raster (via the detector) and summarise it."""
    from detector.errors import DetectorError
    from detector.io import inspect_raster

    try:
        info = inspect_raster(path, name=filename)
    except DetectorError as exc:
        raise InvalidImageryError(str(exc)) from exc
    crs = CRS.from_user_input(info.grid.crs)
    left, bottom, right, top = info.grid.bounds
    footprint = reproject(box(left, bottom, right, top), crs, WGS84)
    date = None
    if info.date and len(info.date) == 10:
        date = dt.date.fromisoformat(info.date)
    return RasterSummary(
        crs=crs.to_string(),
        width=info.width,
        height=info.height,
        band_count=info.count,
        resolution_m=float(info.resolution_m),
        footprint=footprint,
        date=date,
    )


def final_path(data_dir: Path, sha256: str) -> Path:
    return data_dir / "imagery" / sha256[:2] / f"{sha256}.tif"


def move_into_place(tmp: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(tmp, dest)
