"""Disturbance patches in the database: ingest detector output, link re-detections, query."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import pandas as pd
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from service.compliance import judge_patches
from service.core.config import Settings
from service.errors import InvalidInputError
from service.geometry import M2_PER_MU, WGS84, geodesic_area_m2
from service.models import District, Patch, User, set_geometry
from service.projects import bbox_clause
from service.scope import DistrictScope
from service.zones import ZoneFilter, zone_filter

__all__ = ["PatchQuery", "ingest_detections", "search_patches", "CHANGE_TYPES"]

CHANGE_TYPES = ("新增", "续建（范围扩大）", "续建（范围缩小）", "续建（范围不变）", "完工")


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
    if query.bbox:
        stmt = stmt.where(bbox_clause(Patch, query.bbox))
    if query.min_priority is not None:
        stmt = stmt.where(Patch.priority >= query.min_priority)
    if query.scan_id is not None:
        stmt = stmt.where(Patch.scan_id == query.scan_id)
    if query.priority_zone is not None:
        stmt = stmt.where(zone_filter(query.priority_zone))
    return stmt


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
