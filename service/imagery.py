"""Imagery uploads: checksum, validation through the detector, storage. Routes call this module and never
import rasterio themselves; raster checks live in :func:`detector.io.inspect_raster`."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pyproj import CRS
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from service.errors import ImportFormatError, PayloadTooLargeError
from service.geometry import WGS84, reproject

__all__ = [
    "RasterSummary",
    "InvalidImageryError",
    "store_upload",
    "inspect_upload",
    "final_path",
    "move_into_place",
    "upload_tempdir",
    "safe_filename",
    "display_name",
    "remove_stale_temp",
    "remove_orphan_imagery",
]

_CHUNK = 1024 * 1024
#: ``<kind>.<host hash>.<pid>.<random>``: the folder of one upload under ``data_dir/tmp``.
_TEMP_NAME = re.compile(r"^[a-z]+\.(?P<host>[0-9a-f]{8})\.(?P<pid>\d+)\.[0-9a-f]+$")


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
    """Copy ``src`` to ``dest`` in chunks, stopping past ``max_bytes``; returns (size, sha256 hex).

    On any error (too large, disk full, cancelled) ``dest`` is removed before the error propagates.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    try:
        with dest.open("wb") as out:
            while chunk := src.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLargeError(
                        f"{filename!r} is larger than the upload limit of {max_bytes:,} bytes; cut it into tiles "
                        "or raise SOILWATCH_MAX_UPLOAD_BYTES",
                        limit_bytes=max_bytes,
                    )
                digest.update(chunk)
                out.write(chunk)  # a full disk raises OSError(ENOSPC): answered 507 by api.problems
            out.flush()
            os.fsync(out.fileno())  # on disk before the database row that points at it is committed
    except BaseException:
        dest.unlink(missing_ok=True)  # never leave a partial file behind
        raise
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
    footprint = _footprint(info.grid.bounds, crs, filename)
    if not (math.isfinite(info.resolution_m) and info.resolution_m > 0):
        raise InvalidImageryError(f"{filename!r} has pixels of {info.resolution_m!r} m; check its geotransform")
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


def _footprint(bounds: tuple[float, float, float, float], crs: CRS, filename: str) -> BaseGeometry:
    """The image's outline in EPSG:4326; 422 when it does not land on the earth (a broken geotransform or CRS)."""
    try:
        footprint = reproject(box(*bounds), crs, WGS84)
    except Exception as exc:  # pyproj raises several types for impossible transforms
        raise InvalidImageryError(f"{filename!r}: cannot place bounds {bounds!r} of {crs.to_string()} on the earth "
                                  f"({exc}); check its CRS and geotransform") from exc  # fmt: skip
    lon0, lat0, lon1, lat1 = footprint.bounds
    if not all(map(math.isfinite, footprint.bounds)) or lon0 < -180 or lon1 > 180 or lat0 < -90 or lat1 > 90:
        raise InvalidImageryError(
            f"{filename!r} lies at {bounds!r} in {crs.to_string()}, which is not on the earth; check its CRS and "
            "geotransform (e.g. easting and northing swapped, or a missing zone prefix)"
        )
    return footprint


def safe_filename(filename: str, *, max_bytes: int = 120, default: str = "upload.tif") -> str:
    """A name to store ``filename`` under: its last path part (``/`` and ``\\`` both separate), letters, digits
    and ``._-`` only (anything else becomes ``_``), cut from the left to ``max_bytes`` of UTF-8 (file systems
    hold 255 bytes; Chinese takes 3 a character), never ``.``/``..``. Keeps the date the detector reads from it."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c if (c.isalnum() and c.isprintable()) or c in "._-" else "_" for c in name)
    while len(name.encode("utf-8", "replace")) > max_bytes:
        name = name[1:]
    return default if name.strip(".") == "" else name


def display_name(filename: str | None, default: str = "upload") -> str:
    """``filename`` as stored for display: no control characters (PostgreSQL text cannot hold NUL) or lone
    surrogates, at most 300 characters."""
    text = "".join("_" if (ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF) else c for c in filename or "")
    return text[:300] or default


def final_path(data_dir: Path, sha256: str) -> Path:
    return data_dir / "imagery" / sha256[:2] / f"{sha256}.tif"


def move_into_place(tmp: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(tmp, dest)  # a rename: tmp and dest are both under the data dir


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def upload_tempdir(data_dir: Path, kind: str) -> Path:
    """A new folder under ``data_dir/tmp`` for one upload of ``kind`` ("imagery", "import"), created.

    Its name carries this host and process id, so that :func:`remove_stale_temp` can remove what a
    killed process left there without touching the uploads of a live one.
    """
    path = data_dir / "tmp" / f"{kind}.{_host_tag()}.{os.getpid()}.{uuid.uuid4().hex}"
    path.mkdir(parents=True)
    return path


def remove_stale_temp(data_dir: Path, *, max_age_s: float = 3600.0) -> int:
    """Remove leftovers under ``data_dir/tmp``; returns how many entries went.

    Removed: upload folders of a process of this host that no longer exists (a ``kill -9`` or crash
    mid-upload), and anything not made by :func:`upload_tempdir` on this host that was not modified for
    ``max_age_s`` seconds (e.g. an export's folder).
    Temp files are never visible through the API; this only gives their disk space back.
    """
    folder = data_dir / "tmp"
    if not folder.is_dir():
        return 0
    host, removed, now = _host_tag(), 0, time.time()
    for entry in folder.iterdir():
        match = _TEMP_NAME.match(entry.name)
        try:
            if match and match["host"] == host:
                stale = not _alive(int(match["pid"]))  # a live upload may well take longer than max_age_s
            else:
                stale = entry.lstat().st_mtime < now - max_age_s
            if not stale:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except OSError:  # removed meanwhile by its owner, or not ours to remove: leave it
            continue
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_orphan_imagery(data_dir: Path, known_sha256: Collection[str], *, min_age_s: float = 3600.0) -> int:
    """Remove stored uploads under ``data_dir/imagery`` that no imagery row names; returns how many.

    A crash between :func:`move_into_place` and the commit of the row leaves such a file (never visible
    through the API). Only files older than ``min_age_s`` go: a younger one may be an upload that a live
    process is committing right now.
    """
    folder = data_dir / "imagery"
    if not folder.is_dir():
        return 0
    removed, now = 0, time.time()
    for path in folder.glob("*/*.tif"):
        try:
            if path.stem not in known_sha256 and path.stat().st_mtime < now - min_age_s:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed
