"""Disturbance patches in the database: ingest detector output, link re-detections, query."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import pandas as pd
from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, defer, lazyload
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.sqltypes import NullType

from service.compliance import judge_patches
from service.core.config import Settings
from service.errors import InvalidInputError
from service.geometry import M2_PER_MU, WGS84, geodesic_area_m2
from service.models import District, Patch, User, set_geometry
from service.projects import bbox_clause
from service.scope import DistrictScope
from service.zones import ZoneFilter, zone_filter

__all__ = [
    "PatchQuery",
    "PatchPage",
    "ingest_detections",
    "search_patches",
    "page_patches",
    "CHANGE_TYPES",
    "COUNT_CAP",
]

CHANGE_TYPES = ("新增", "续建（范围扩大）", "续建（范围缩小）", "续建（范围不变）", "完工")

#: ``GET /patches`` counts the matches up to this many unless asked for the exact number.
COUNT_CAP = 10_000
#: The list order: highest priority first, then the biggest, then the oldest row.
LIST_ORDER = (Patch.priority.desc(), Patch.area_m2.desc(), Patch.id)


@dataclass(frozen=True)
class PatchQuery:
    """Filters of ``GET /patches`` (and the exports)."""

    district: str | None = None
    categories: tuple[str, ...] = ()
    review_status: str | None = None
    verdict: str | None = None
    after_from: dt.date | None = None
    after_to: dt.date | None = None
    min_area_m2: float | None = None
    bbox: tuple[float, float, float, float] | None = None
    min_priority: int | None = None
    scan_id: int | None = None
    priority_zone: ZoneFilter | None = None  # a zone id, or "any"
    # the detector's patch confidence (mean change probability) at least this; patches without one do not match
    min_confidence: float | None = None


def search_patches(scope: DistrictScope, query: PatchQuery) -> Select[tuple[Patch]]:
    stmt = scope.apply(select(Patch), Patch.district_code)
    if query.district:
        stmt = stmt.where(Patch.district_code == query.district)
    if query.categories:
        stmt = stmt.where(Patch.category.in_(query.categories))
    if query.review_status:
        stmt = stmt.where(Patch.review_status == query.review_status)
    if query.verdict:
        stmt = stmt.where(Patch.verdict == query.verdict)
    if query.after_from:
        stmt = stmt.where(Patch.after_date >= query.after_from)
    if query.after_to:
        stmt = stmt.where(Patch.after_date <= query.after_to)
    if query.min_area_m2 is not None:
        stmt = stmt.where(Patch.area_m2 >= query.min_area_m2)
    if query.bbox:  # the spatial index finds the candidates, the bbox columns decide
        min_x, min_y, max_x, max_y = query.bbox
        stmt = stmt.where(
            _bbox_candidates(Patch.id, Patch.geometry, *query.bbox),
            # "+ 0": compared row by row, so that SQLite does not range over min_x alone in ix_patches_bbox
            # instead of asking the R*Tree
            Patch.max_x + 0 >= min_x, Patch.min_x + 0 <= max_x, Patch.max_y + 0 >= min_y, Patch.min_y + 0 <= max_y,
        )  # fmt: skip
    if query.min_priority is not None:
        stmt = stmt.where(Patch.priority >= query.min_priority)
    if query.scan_id is not None:
        stmt = stmt.where(Patch.scan_id == query.scan_id)
    if query.priority_zone is not None:
        stmt = stmt.where(zone_filter(query.priority_zone))
    if query.min_confidence is not None:
        stmt = stmt.where(Patch.confidence >= query.min_confidence)
    return stmt


class _bbox_candidates(FunctionElement[bool]):  # noqa: N801 (a SQL function)
    """``(id, geometry, min_x, min_y, max_x, max_y)``: patches whose bbox may meet the box (degrees, EPSG:4326),
    answered by the spatial index: the R*Tree ``patches_rtree`` on SQLite, the GiST index of ``geometry``
    through ``&&`` on PostgreSQL (both migration 0006 / 0001). Both may let through a few rows just
    outside the box (32-bit float boxes), so it goes with the exact :func:`bbox_clause`."""

    type = NullType()  # not Boolean: SQLite would get "(… IN …) = 1", which no index serves
    inherit_cache = True
    name = "bbox_candidates"


def _bbox_args(element: _bbox_candidates, compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(c, **kw) for c in element.clauses]


@compiles(_bbox_candidates, "sqlite")
def _bbox_sqlite(element: _bbox_candidates, compiler: SQLCompiler, **kw: Any) -> str:
    id_, _geometry, min_x, min_y, max_x, max_y = _bbox_args(element, compiler, **kw)
    return (f"{id_} IN (SELECT id FROM patches_rtree WHERE max_x >= {min_x} AND min_x <= {max_x} "
            f"AND max_y >= {min_y} AND min_y <= {max_y})")  # fmt: skip


@compiles(_bbox_candidates, "postgresql")
def _bbox_postgresql(element: _bbox_candidates, compiler: SQLCompiler, **kw: Any) -> str:
    _id, geometry, min_x, min_y, max_x, max_y = _bbox_args(element, compiler, **kw)
    return f"{geometry} && ST_MakeEnvelope({min_x}, {min_y}, {max_x}, {max_y}, 4326)"


@compiles(_bbox_candidates)
def _bbox_other(element: _bbox_candidates, compiler: SQLCompiler, **kw: Any) -> str:
    return "1 = 1"  # no spatial index known: the bbox columns alone


@dataclass(frozen=True)
class PatchPage:
    """One page of a patch search: the rows, how many match (``count``, exact or at least), the next cursor."""

    rows: list[Patch]
    count: int
    count_exact: bool
    next_cursor: str | None


def page_patches(
    session: Session,
    stmt: Select[Any],
    *,
    limit: int,
    offset: int = 0,
    cursor: str | None = None,
    exact_count: bool = False,
    geometry: bool = True,
    load_matches: bool = True,
) -> PatchPage:
    """A page of ``stmt`` (a :func:`search_patches` query) in the list order, by offset or after ``cursor``.

    The count stops at :data:`COUNT_CAP` (``count_exact`` False beyond it) unless ``exact_count``: an
    exact count reads every match, which costs seconds with a million patches. ``cursor`` is the
    ``next_cursor`` of the previous page (keyset paging): it costs the same on every page, while an
    offset makes the database step over all the rows before it. ``geometry=False`` leaves the
    geometries unread (accessing one then loads it).
    """
    if cursor is not None and offset:
        raise InvalidInputError(f"give offset or cursor, not both (offset {offset!r}); a cursor already says where")
    matches = stmt.with_only_columns(Patch.id).order_by(None)
    if exact_count:
        count = session.scalar(select(func.count()).select_from(matches.subquery())) or 0
        count_exact = True
    else:
        count = session.scalar(select(func.count()).select_from(matches.limit(COUNT_CAP + 1).subquery())) or 0
        count_exact = count <= COUNT_CAP
        count = min(count, COUNT_CAP)
    ids = stmt.with_only_columns(Patch.id).order_by(*LIST_ORDER)
    if cursor is None:
        rows = _rows(session, ids.offset(offset).limit(limit), geometry, load_matches)
    else:
        priority, area, last_id = _decode_cursor(cursor)
        # Two index ranges in list order, no OR across the sort keys: the rest of this priority, then lower ones.
        same = ids.where(
            Patch.priority == priority, Patch.area_m2 <= area, or_(Patch.area_m2 < area, Patch.id > last_id)
        )
        rows = _rows(session, same.limit(limit), geometry, load_matches)
        if len(rows) < limit:
            rows += _rows(
                session, ids.where(Patch.priority < priority).limit(limit - len(rows)), geometry, load_matches
            )
    last = rows[-1] if len(rows) == limit else None
    next_cursor = _encode_cursor(last.priority, last.area_m2, last.id) if last is not None else None
    return PatchPage(rows, count, count_exact, next_cursor)


def _rows(session: Session, ids: Select[Any], geometry: bool, load_matches: bool = True) -> list[Patch]:
    """The patches of an ``id`` query, in its order. The ids come first, from the indexes alone where they
    cover the filters, and only the page's rows are read whole (a "deferred join"): sorting or skipping
    thousands of whole rows, geometry included, is what made a page slow."""
    order = list(session.scalars(ids))
    if not order:
        return []
    rows = select(Patch).where(Patch.id.in_(order))
    if not geometry:
        rows = rows.options(defer(Patch.geometry))
    if not load_matches:
        rows = rows.options(lazyload(Patch.matches))
    found = {p.id: p for p in session.scalars(rows)}
    return [found[i] for i in order if i in found]  # one deleted in between is left out


def _encode_cursor(priority: int, area_m2: float, patch_id: int) -> str:
    raw = json.dumps([priority, area_m2, patch_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, float, int]:
    try:
        priority, area, patch_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(priority, int) and isinstance(area, int | float) and isinstance(patch_id, int):
            return priority, float(area), patch_id
    except (ValueError, TypeError):
        pass
    raise InvalidInputError(f"cursor {cursor!r} is not one this API made; pass next_cursor of the previous page")


def _date(value: Any) -> dt.date | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, dt.datetime | pd.Timestamp):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _opt(row: pd.Series, name: str) -> Any:
    value = row.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def ingest_detections(
    session: Session,
    settings: Settings,
    frame: gpd.GeoDataFrame,
    *,
    scan_id: int | None = None,
    district_code: str | None = None,
    user: User | None = None,
) -> list[Patch]:
    """Store the detector's patches (``DetectionResult.patches``), link re-detections, and judge them.

    ``frame`` has a geometry in any CRS and optionally the detector's columns (patch_id, confidence,
    conf_max, before_date, after_date, source_before, source_after, model, change_type). A patch that
    overlaps a patch of an earlier scan is linked to it (``previous_patch_id``) with change type
    续建（范围扩大/缩小/不变） instead of being reported as new.
    """
    if frame.crs is None:
        raise InvalidInputError("the detected patches have no CRS; the detector must set one")
    frame = frame.to_crs(WGS84)
    boundaries = session.scalars(select(District).where(District.geometry.is_not(None))).all()
    created: list[Patch] = []
    for _, row in frame.iterrows():
        geom = row.geometry
        if geom is None or geom.is_empty:
            continue
        if not geom.is_valid:
            geom = geom.buffer(0)
        centre = geom.representative_point()
        area = geodesic_area_m2(geom)
        district = district_code or next((d.code for d in boundaries if d.geometry.contains(centre)), None)
        after = _date(row.get("after_date"))
        patch = Patch(
            patch_code=f"tmp-{len(created)}-{id(row)}",
            scan_id=scan_id,
            district_code=district,
            area_m2=area,
            area_mu=area / M2_PER_MU,
            lon=centre.x,
            lat=centre.y,
            before_date=_date(row.get("before_date")),
            after_date=after,
            source_before=_opt(row, "source_before"),
            source_after=_opt(row, "source_after"),
            confidence=_opt(row, "confidence"),
            conf_max=_opt(row, "conf_max"),
            model=_opt(row, "model"),
            change_type=_opt(row, "change_type") or "新增",
            matches=[],  # a new patch has none: saves judge_patches a lazy load per patch (5x faster writes)
        )
        set_geometry(patch, geom)
        _link_previous(session, patch, scan_id)
        session.add(patch)
        session.flush()
        patch.patch_code = f"{(after or dt.date.today()).year}_{district or '000000'}_{patch.id:06d}"
        created.append(patch)
    session.flush()
    judge_patches(session, settings, created, reason=f"scan #{scan_id}" if scan_id else "patches ingested", user=user)
    return created


def _link_previous(session: Session, patch: Patch, scan_id: int | None) -> None:
    stmt = select(Patch).where(bbox_clause(Patch, patch.geometry.bounds))
    if scan_id is not None:
        stmt = stmt.where(Patch.scan_id != scan_id)
    best: tuple[float, Patch] | None = None
    for earlier in session.scalars(stmt):
        shared = earlier.geometry.intersection(patch.geometry).area
        if shared > 0 and (best is None or shared > best[0]):
            best = (shared, earlier)
    if best is None:
        return
    earlier = best[1]
    patch.previous_patch_id = earlier.id
    ratio = patch.area_m2 / earlier.area_m2 if earlier.area_m2 else 1.0
    patch.change_type = "续建（范围扩大）" if ratio > 1.1 else "续建（范围缩小）" if ratio < 0.9 else "续建（范围不变）"
