"""``/map``: read-only GeoJSON layers and imagery tiles for the review map (一张图, ``/map`` page).

The layers are RFC 7946 FeatureCollections in lon/lat (EPSG:4326) with the attributes the map and its
list need; ``count`` (all matches) and ``truncated`` are foreign members. Tiles are XYZ Web Mercator
PNGs rendered from the uploaded GeoTIFFs by :mod:`service.tiles`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, cast

import shapely
from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.api.deps import ScopeDep, SessionDep, owned, require_role
from service.api.routes.patches import patch_query
from service.models import District, Imagery, Patch, PriorityZone, Project, User
from service.patches import PatchQuery, search_patches
from service.projects import bbox_clause, parse_bbox
from service.scope import DistrictScope
from service.tiles import render_tile
from service.vocab import CATEGORY_LABELS, VERDICT_LABELS, Category, Role, Verdict
from service.zones import kind_label

__all__ = ["router", "MAX_FEATURES"]

router = APIRouter(prefix="/map", tags=["map"])
Reader = Annotated[User, Depends(require_role(Role.viewer))]
OwnedImagery = Annotated[Imagery, Depends(owned(Imagery, "imagery_id"))]
MAX_FEATURES = 20_000
_GEOJSON = "application/geo+json"
_PATCH_FIELDS = ("id", "patch_code", "district_code", "category", "review_status", "verdict", "priority", "area_m2",
                 "area_mu", "lon", "lat", "before_date", "after_date", "change_type", "confidence", "scan_id",
                 "version", "priority_zone_id")  # fmt: skip
_PROJECT_FIELDS = ("id", "code", "name", "builder", "industry", "approval_number", "vector_type", "district_code")
_ZONE_FIELDS = ("id", "name", "kind", "weight", "district_code")


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _collection(features: list[dict[str, Any]], count: int) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": features, "count": count, "truncated": count > len(features)}


def _feature(geometry: Any, props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "id": props.get("id") or props.get("code"),
            "geometry": shapely.geometry.mapping(geometry) if geometry is not None else None,
            "properties": props}  # fmt: skip


@router.get(
    "/patches.geojson",
    summary="Patches as GeoJSON for the map and its list, highest priority first",
    response_class=Response,
    responses={200: {"content": {_GEOJSON: {}}}},
)
def patches_geojson(
    user: Reader,
    session: SessionDep,
    scope: ScopeDep,
    query: Annotated[PatchQuery, Depends(patch_query)],
    limit: Annotated[int, Query(ge=1, le=MAX_FEATURES)] = 5000,
) -> Response:
    """The patches of ``GET /patches`` (same filters, your districts) as one FeatureCollection.

    Properties: id, patch_code, district_code, category + category_label, review_status, verdict +
    verdict_label, priority, area_m2, area_mu, lon, lat, before_date, after_date, change_type,
    confidence, scan_id, version, priority_zone_id (the zone whose weight is in priority, or null).
    """
    stmt = search_patches(scope, query)
    count = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    ordered = stmt.order_by(Patch.priority.desc(), Patch.area_m2.desc(), Patch.id).limit(limit)
    rows = cast("list[Patch]", session.scalars(ordered).all())  # search_patches is typed Select[tuple[Patch]]
    features = []
    for patch in rows:
        props = {name: _plain(getattr(patch, name)) for name in _PATCH_FIELDS}
        props["category_label"] = CATEGORY_LABELS.get(Category(patch.category)) if patch.category else None
        props["verdict_label"] = VERDICT_LABELS.get(Verdict(patch.verdict)) if patch.verdict else None
        features.append(_feature(patch.geometry, props))
    return _json(_collection(features, count))


@router.get(
    "/projects.geojson",
    summary="Approved-project areas (防治责任范围) as GeoJSON",
    response_class=Response,
    responses={200: {"content": {_GEOJSON: {}}}},
)
def projects_geojson(
    user: Reader,
    session: SessionDep,
    scope: ScopeDep,
    bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat")] = None,
    district: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_FEATURES)] = 5000,
) -> Response:
    """Projects of the approved list in your districts; properties id, code, name, builder, industry,
    approval_number, vector_type (responsibility / schematic / point_buffer), district_code."""
    rows, count = _area_layer(session, scope, Project, bbox, district, limit, Project.id)
    features = [_feature(p.geometry, {n: _plain(getattr(p, n)) for n in _PROJECT_FIELDS}) for p in rows]
    return _json(_collection(features, count))


@router.get(
    "/priority-zones.geojson",
    summary="Priority zones (重点监管区域) as GeoJSON",
    response_class=Response,
    responses={200: {"content": {_GEOJSON: {}}}},
)
def zones_geojson(
    user: Reader,
    session: SessionDep,
    scope: ScopeDep,
    bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat")] = None,
    district: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_FEATURES)] = 5000,
) -> Response:
    """Priority zones in your districts, heaviest first; properties id, name, kind (water_source,
    ecological_red_line, nature_reserve, river_corridor, steep_slope, geohazard, other), kind_label
    (水源保护区 …), weight (priority added to the patches inside), district_code."""
    order = (PriorityZone.weight.desc(), PriorityZone.id)
    rows, count = _area_layer(session, scope, PriorityZone, bbox, district, limit, *order)
    features = [
        _feature(z.geometry, {n: _plain(getattr(z, n)) for n in _ZONE_FIELDS} | {"kind_label": kind_label(z.kind)})
        for z in rows
    ]
    return _json(_collection(features, count))


def _area_layer(
    session: Session,
    scope: DistrictScope,
    model: type[Project] | type[PriorityZone],
    bbox: str | None,
    district: str | None,
    limit: int,
    *order_by: Any,
) -> tuple[Sequence[Any], int]:
    """Rows of an area layer (projects, zones) in the caller's districts, filtered by bbox and district:
    the first ``limit`` in ``order_by`` and how many match in all."""
    stmt = scope.apply(select(model), model.district_code)
    box = parse_bbox(bbox)
    if box:
        stmt = stmt.where(bbox_clause(model, box))
    if district:
        stmt = stmt.where(model.district_code == district)
    count = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    return session.scalars(stmt.order_by(*order_by).limit(limit)).all(), count


@router.get(
    "/districts.geojson",
    summary="Boundaries of your districts as GeoJSON",
    response_class=Response,
    responses={200: {"content": {_GEOJSON: {}}}},
)
def districts_geojson(user: Reader, session: SessionDep, scope: ScopeDep) -> Response:
    rows = session.scalars(scope.apply(select(District).order_by(District.code), District.code)).all()
    features = [_feature(d.geometry, {"code": d.code, "name": d.name}) for d in rows]
    return _json(_collection(features, len(features)))


@router.get(
    "/imagery/{imagery_id}/tiles/{z}/{x}/{y}.png",
    summary="An XYZ (Web Mercator) tile of an uploaded image",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 204: {"description": "The tile does not touch the image"}},
)
def imagery_tile(
    user: Reader,
    imagery: OwnedImagery,
    session: SessionDep,
    z: Annotated[int, Path(ge=0, le=30)],
    x: Annotated[int, Path(ge=0)],
    y: Annotated[int, Path(ge=0)],
) -> Response:
    """256 px RGBA PNG, true colour from the red, green and blue bands, one 2–98 % stretch per image;
    transparent outside the image and where it has no data. Zoom levels 8–22 are served."""
    # Rendering reads only the file: give the connection back first. A map view asks for dozens of tiles at
    # once, and on a busy machine they used to hold the whole pool while rendering (503 for everything else).
    session.close()
    png = render_tile(imagery, z, x, y)
    if png is None:
        return Response(status_code=204, headers={"Cache-Control": "private, max-age=3600"})
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


def _json(body: dict[str, Any]) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), media_type=_GEOJSON)
