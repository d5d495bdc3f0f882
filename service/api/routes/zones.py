"""``/priority-zones``: priority zones (重点监管区域): import, list, read, edit, delete.

Patches inside a zone rank higher (:mod:`service.zones`); importing or deleting zones ranks the patches
there again, and their histories say why.
"""

from __future__ import annotations

import shutil
from typing import Annotated, Any

import shapely
from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from sqlalchemy import func, select

from service.api.deps import ScopeDep, SessionDep, SettingsDep, check_if_match, etag_of, owned, require_role
from service.api.problems import problem_responses
from service.api.routes.projects import receive_upload
from service.errors import InvalidInputError, NotFoundError
from service.imagery import display_name, upload_tempdir
from service.models import ImportReport, PriorityZone, User, patch_zones
from service.projects import parse_bbox
from service.schemas import ImportReportPublic, PriorityZonePublic, PriorityZonesPublic, PriorityZoneUpdate
from service.vocab import Role, ZoneKind
from service.zones import (
    MAX_WEIGHT,
    ZoneQuery,
    apply_zone_import,
    delete_zone,
    edit_zone,
    kind_label,
    read_zone_file,
    search_zones,
)

__all__ = ["router", "zone_public"]

router = APIRouter(prefix="/priority-zones", tags=["priority zones"])
Supervisor = Annotated[User, Depends(require_role(Role.supervisor))]
Reader = Annotated[User, Depends(require_role(Role.viewer))]
OwnedZone = Annotated[PriorityZone, Depends(owned(PriorityZone, "zone_id"))]
_KINDS = ", ".join(k.value for k in ZoneKind)


def zone_public(zone: PriorityZone, *, geometry: bool = True, patch_count: int | None = None) -> PriorityZonePublic:
    data: dict[str, Any] = {c: getattr(zone, c) for c in PriorityZonePublic.model_fields if hasattr(zone, c)}
    data["kind_label"] = kind_label(zone.kind)
    data["patch_count"] = patch_count
    data["bbox"] = [zone.min_x, zone.min_y, zone.max_x, zone.max_y] if zone.min_x is not None else None
    data["geometry"] = shapely.geometry.mapping(zone.geometry) if geometry and zone.geometry else None
    return PriorityZonePublic.model_validate(data)


def _kind(text: str | None) -> ZoneKind | None:
    if text is None or not text.strip():
        return None
    try:
        return ZoneKind(text.strip())
    except ValueError:
        raise InvalidInputError(f"unknown zone kind {text!r}; use one of {_KINDS}") from None


@router.post(
    "/import",
    response_model=ImportReportPublic,
    status_code=201,
    summary="Import priority zones (water sources, red lines, steep slopes …)",
    responses=problem_responses(400, 403, 409, 413),
    description="Multipart upload in the formats of the project import: a zipped Shapefile (GBK or UTF-8; .cpg "
    "honoured), GeoPackage, GeoJSON, or CSV/XLSX with 经度/纬度 or WKT. Columns: 名称 (name, required), 类型 / "
    f"区域类型 (kind: {_KINDS}, or the Chinese labels 水源保护区, 生态保护红线, 陡坡 …), 权重 (weight, "
    "else the kind's default from SOILWATCH_ZONE_WEIGHTS), 行政区代码. Re-importing updates the zone with the "
    "same name and kind. Patches inside the zones are ranked again; the report lists every rejected row.",
)
def import_zones(
    user: Supervisor,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    scope: ScopeDep,
    file: Annotated[UploadFile, File(description="The zone file")],
    kind: Annotated[str | None, Form(description=f"Kind for rows without a 类型: {_KINDS}")] = None,
    weight: Annotated[int | None, Form(ge=0, le=MAX_WEIGHT, description="Weight for rows without a 权重")] = None,
    district_code: Annotated[str | None, Form(description="District for rows without one")] = None,
    crs: Annotated[str | None, Form(description="CRS when the file has none, e.g. EPSG:4527")] = None,
    encoding: Annotated[str | None, Form(description="Attribute encoding override, e.g. GBK")] = None,
) -> ImportReport:
    filename = display_name(file.filename)  # no NUL or control characters: stored in the report
    default_kind = _kind(kind)
    workdir = upload_tempdir(settings.data_dir, "import")
    try:
        path = receive_upload(request, file, settings, workdir)
        result = read_zone_file(path, filename, settings, workdir=workdir, crs=crs, encoding=encoding,
                                kind=default_kind, weight=weight)  # fmt: skip
        report, _ = apply_zone_import(session, user, scope, result, filename, district_code=district_code)
        session.commit()
        return report
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@router.get("/imports/{import_id}", response_model=ImportReportPublic, summary="One zone import report")
def read_import(user: Reader, import_id: int, session: SessionDep, scope: ScopeDep) -> ImportReport:
    report = session.get(ImportReport, import_id)
    if report is None or report.subject != "priority_zones" or (scope.codes is not None and report.user_id != user.id):
        raise NotFoundError(f"zone import report {import_id!r} not found (or not yours)")
    return report


@router.get("", response_model=PriorityZonesPublic, summary="Priority zones, heaviest first")
def list_zones(
    user: Reader,
    session: SessionDep,
    settings: SettingsDep,
    scope: ScopeDep,
    q: Annotated[str | None, Query(description="Substring of the name")] = None,
    kind: Annotated[str | None, Query(description=_KINDS)] = None,
    district: str | None = None,
    bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat (EPSG:4326)")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1)] = 50,
    geometry: Annotated[bool, Query(description="Include GeoJSON geometries")] = False,
) -> PriorityZonesPublic:
    limit = min(limit, settings.page_size_max)
    chosen = _kind(kind)
    stmt = search_zones(scope, ZoneQuery(q, chosen.value if chosen else None, district, parse_bbox(bbox)))
    count = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    order = (PriorityZone.weight.desc(), PriorityZone.name, PriorityZone.id)
    rows = session.scalars(stmt.order_by(*order).offset(offset).limit(limit)).all()
    return PriorityZonesPublic(
        data=[zone_public(z, geometry=geometry) for z in rows], count=count, offset=offset, limit=limit
    )


@router.get("/{zone_id}", response_model=PriorityZonePublic, summary="One priority zone with its geometry")
def read_zone(user: Reader, zone: OwnedZone, session: SessionDep, response: Response) -> PriorityZonePublic:
    count = session.scalar(select(func.count()).select_from(patch_zones).where(patch_zones.c.zone_id == zone.id))
    response.headers["ETag"] = etag_of(zone)
    return zone_public(zone, patch_count=count or 0)


@router.patch(
    "/{zone_id}",
    response_model=PriorityZonePublic,
    summary="Rename a priority zone or change its kind or weight; its patches are ranked again",
    responses=problem_responses(403, 409, 412),
)
def update_zone(
    user: Supervisor,
    zone: OwnedZone,
    body: PriorityZoneUpdate,
    response: Response,
    session: SessionDep,
    if_match: Annotated[str | None, Header(description="ETag from GET; 412 if someone changed it first")] = None,
) -> PriorityZonePublic:
    check_if_match(if_match, zone)
    changes = body.model_dump(exclude_unset=True)
    if "kind" in changes:
        changes["kind"] = ZoneKind(changes["kind"]).value
    edit_zone(session, zone, changes, user=user)
    session.commit()
    response.headers["ETag"] = etag_of(zone)
    return zone_public(zone)


@router.delete(
    "/{zone_id}",
    status_code=204,
    summary="Remove a priority zone; its patches are ranked again",
    responses=problem_responses(403, 409, 412),
)
def remove_zone(
    user: Supervisor,
    zone: OwnedZone,
    session: SessionDep,
    if_match: Annotated[str | None, Header(description="ETag from GET; 412 if someone changed it first")] = None,
) -> Response:
    check_if_match(if_match, zone)
    delete_zone(session, zone, user=user)
    session.commit()
    return Response(status_code=204)
