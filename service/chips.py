"""Before/after review chips of a patch: PNG crops of the scan's imagery, cached under the data dir.

The raster work is the detector's (:func:`detector.io.read_rgb_window`, :func:`detector.chips.render_chip`);
this module picks the imagery, the crop and the cache file. A chip's file name holds the imagery id
and a hash of the patch outline, so a re-imported tile or a changed outline never serves a stale chip.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from pyproj import CRS
from shapely.geometry.base import BaseGeometry
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core.config import Settings
from service.errors import NotFoundError, ServiceError
from service.geometry import WGS84, metric_crs_for, reproject
from service.models import Imagery, Patch, Scan
from service.projects import bbox_clause

__all__ = [
    "ChipError",
    "ChipSource",
    "chip_png",
    "chip_source",
    "render_chip_png",
    "imagery_for",
    "chip_bounds",
    "MARGIN_SHARE",
    "MIN_MARGIN_M",
]

#: Context around the patch: this share of its larger side, at least MIN_MARGIN_M on each side.
MARGIN_SHARE = 0.5
MIN_MARGIN_M = 30.0
MAX_CHIP_PX = 1024


class ChipError(ServiceError):
    """The imagery of a chip cannot be read (moved, deleted or corrupt on disk)."""

    status_code = 500
    title = "Chip not available"


def imagery_for(session: Session, patch: Patch, which: str) -> Imagery:
    """The tile a chip is cut from: the scan's before/after tile, else a tile of the patch's date covering it."""
    if patch.scan_id is not None:
        scan = session.get(Scan, patch.scan_id)
        ident = None if scan is None else scan.before_imagery_id if which == "before" else scan.after_imagery_id
        row = session.get(Imagery, ident) if ident is not None else None
        if row is not None:
            return row
    day = patch.before_date if which == "before" else patch.after_date
    if day is not None:
        centre = patch.geometry.representative_point()
        candidates = session.scalars(
            select(Imagery)
            .where(Imagery.acquired_on == day, bbox_clause(Imagery, (centre.x, centre.y, centre.x, centre.y)))
            .order_by(Imagery.id.desc())
        )
        for row in candidates:
            if row.footprint is not None and row.footprint.contains(centre):
                return row
    raise NotFoundError(
        f"no {which} imagery for patch {patch.id}" + (f" (acquired {day})" if day else "")
        + "; chips are cut from uploaded tiles: upload the tile of that date"
    )  # fmt: skip


def chip_bounds(geom: BaseGeometry, crs: CRS) -> tuple[tuple[float, float, float, float], BaseGeometry]:
    """The crop around ``geom`` (lon/lat) in ``crs``: the patch's bbox plus margins; and ``geom`` in ``crs``."""
    centre = geom.representative_point()
    metric = metric_crs_for(centre.x, centre.y)
    local = reproject(geom, WGS84, metric)
    left, bottom, right, top = local.bounds
    margin = max(MARGIN_SHARE * max(right - left, top - bottom), MIN_MARGIN_M)
    crop = local.envelope.buffer(margin, join_style="mitre")
    return reproject(crop, metric, crs).bounds, reproject(geom, WGS84, crs)  # type: ignore[return-value]


@dataclass(frozen=True)
class ChipSource:
    """What rendering a chip needs, read from the database beforehand, so that the connection can go back
    to the pool before the raster work (see :func:`chip_source`)."""

    path: Path  # the cache file
    imagery_id: int
    imagery_filename: str
    imagery_crs: str | None
    imagery_path: str
    geometry: BaseGeometry  # the patch outline, lon/lat (EPSG:4326)


def chip_source(session: Session, settings: Settings, patch: Patch, which: str) -> ChipSource:
    """The imagery and cache file of the ``which`` ("before"/"after") chip of ``patch``; the only step that
    reads the database."""
    if which not in ("before", "after"):
        raise NotFoundError(f"no chip {which!r}; use before.png or after.png")
    imagery = imagery_for(session, patch, which)
    geom = patch.geometry
    digest = hashlib.sha256(geom.wkb).hexdigest()[:12]
    path = settings.data_dir / "chips" / str(patch.id) / f"{which}-{imagery.id}-{digest}.png"
    return ChipSource(path, imagery.id, imagery.filename, imagery.crs, imagery.path, geom)


def render_chip_png(source: ChipSource) -> bytes:
    """PNG bytes of a chip: the cached file when there, else rendered and cached. No database access."""
    try:
        return source.path.read_bytes()
    except FileNotFoundError:
        pass
    png = _render(source)
    _write_atomic(source.path, png)
    return png


def chip_png(session: Session, settings: Settings, patch: Patch, which: str) -> bytes:
    """PNG bytes of the ``which`` ("before"/"after") chip of ``patch``, from the cache when there."""
    return render_chip_png(chip_source(session, settings, patch, which))


def _render(source: ChipSource) -> bytes:
    from detector.chips import encode_png, render_chip
    from detector.errors import DetectorError
    from detector.io import read_rgb_window

    name = f"{source.imagery_id} ({source.imagery_filename!r})"
    if not source.imagery_crs or not Path(source.imagery_path).exists():
        raise ChipError(f"the file of imagery {name} is missing; upload it again")
    crs = CRS.from_user_input(source.imagery_crs)
    bounds, outline = chip_bounds(source.geometry, crs)
    try:
        rgb, valid, transform = read_rgb_window(source.imagery_path, bounds, max_size=MAX_CHIP_PX)
    except DetectorError as exc:
        raise ChipError(f"cannot cut a chip from imagery {name}: {exc}") from exc
    return encode_png(render_chip(rgb, valid=valid, transform=transform, outlines=[outline]))


def _write_atomic(path: Path, data: bytes) -> None:
    # Two requests may render the same chip at once: each writes its own file, the rename is atomic.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
