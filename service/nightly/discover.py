"""Discovery: catalogue new scenes found in an inbox folder (footprint, CRS, resolution, date, checksum).

A file already in the imagery catalogue (same SHA-256) is skipped; a file that cannot be read is
reported and the rest go on. Each scene is committed on its own, so a run killed half-way keeps
what it catalogued.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from pyproj import CRS
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.geometry import WGS84, reproject
from service.imagery import InvalidImageryError, inspect_upload
from service.models import District, Imagery, set_geometry
from service.nightly.errors import InboxError

__all__ = ["Discovery", "discover_inbox", "sha256_of", "date_from_name"]


@dataclass
class Discovery:
    catalogued: list[int] = field(default_factory=list)  # imagery ids added now
    known: int = 0  # files already in the catalogue
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, why)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def date_from_name(name: str, pattern: str | None) -> dt.date | None:
    """The date the configured ``pattern`` (groups ``year``, ``month``, ``day``) finds in ``name``, if any."""
    if not pattern:
        return None
    m = re.search(pattern, name)
    if not m:
        return None
    try:
        return dt.date(int(m["year"]), int(m["month"]), int(m["day"]))
    except (IndexError, ValueError):
        return None


def _footprint(path: Path) -> BaseGeometry:
    """The scene's outline in lon/lat, from its four corners with densified edges.

    Finer than ``RasterSummary.footprint`` (the reprojected bounding box of the upload path): edges are
    densified, so a Gauss-Krüger scene's outline stays true in lon/lat.
    """
    from detector.errors import DetectorError
    from detector.io import inspect_raster

    try:
        info = inspect_raster(path, name=path.name)
    except DetectorError as exc:
        raise InvalidImageryError(str(exc)) from exc
    crs = info.grid.require_crs()
    t, w, h = info.grid.transform, info.width, info.height
    n = 16
    edge = [(w * i / n, 0.0) for i in range(n)] + [(float(w), h * i / n) for i in range(n)]
    edge += [(w - w * i / n, float(h)) for i in range(n)] + [(0.0, h - h * i / n) for i in range(n)]
    outline = Polygon([t @ (col, row) for col, row in edge])
    return reproject(outline, CRS.from_user_input(crs.to_wkt()), WGS84)


def discover_inbox(
    factory: sessionmaker[Session], inbox: Path, *, extensions: tuple[str, ...], date_pattern: str | None = None
) -> Discovery:
    """Catalogue every new raster under ``inbox`` (recursively, sorted by path)."""
    if not inbox.is_dir():
        raise InboxError(f"inbox {str(inbox)!r} is not a folder; create it or pass --inbox with the scenes' folder")
    if date_pattern:
        try:
            re.compile(date_pattern)
        except re.error as exc:
            raise InboxError(f"date pattern {date_pattern!r} is not a regular expression ({exc})") from exc
    exts = {e.lower() for e in extensions}
    files = sorted(
        p for p in inbox.rglob("*") if p.is_file() and p.suffix.lower() in exts and not p.name.startswith(".")
    )
    out = Discovery()
    with factory() as session:
        districts = session.scalars(select(District).where(District.geometry.is_not(None)))
        boundaries = [(d.code, d.geometry) for d in districts]
        for path in files:
            try:
                sha = sha256_of(path)
            except OSError as exc:
                out.unreadable.append((str(path), f"cannot read the file ({exc})"))
                continue
            if session.scalar(select(Imagery.id).where(Imagery.sha256 == sha)) is not None:
                out.known += 1
                continue
            try:
                summary = inspect_upload(path, path.name)
                footprint = _footprint(path)
            except InvalidImageryError as exc:
                out.unreadable.append((str(path), str(exc)))
                continue
            date = date_from_name(path.name, date_pattern) or summary.date
            if date is None:
                out.unreadable.append((str(path), "no acquisition date in its tags or name; add an ACQ_DATE tag or "
                                                  "set SOILWATCH_SCAN_DATE_PATTERN"))  # fmt: skip
                continue
            centre = footprint.representative_point()
            row = Imagery(
                filename=path.name[:300],
                path=str(path.resolve()),
                sha256=sha,
                size_bytes=path.stat().st_size,
                acquired_on=date,
                sensor=None,
                district_code=next((c for c, g in boundaries if g is not None and g.contains(centre)), None),
                crs=summary.crs,
                width=summary.width,
                height=summary.height,
                band_count=summary.band_count,
                resolution_m=summary.resolution_m,
            )
            set_geometry(row, footprint, "footprint")
            session.add(row)
            session.commit()
            out.catalogued.append(row.id)
    return out
