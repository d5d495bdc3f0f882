"""``/imagery``: upload GeoTIFF tiles (one date each), list them with their footprints."""

from __future__ import annotations

import datetime as dt
import shutil
from typing import Annotated

import shapely
from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from sqlalchemy import func, select

from service.api.deps import ScopeDep, SessionDep, SettingsDep, owned, require_role
from service.api.problems import problem_responses
from service.errors import ConflictError, InvalidInputError, PayloadTooLargeError
from service.imagery import (
    display_name,
    final_path,
    inspect_upload,
    move_into_place,
    safe_filename,
    store_upload,
    upload_tempdir,
)
from service.models import District, Imagery, User, set_geometry
from service.schemas import ImageriesPublic, ImageryPublic
from service.vocab import Role

__all__ = ["router"]

router = APIRouter(prefix="/imagery", tags=["imagery"])
Reader = Annotated[User, Depends(require_role(Role.viewer))]
Supervisor = Annotated[User, Depends(require_role(Role.supervisor))]
OwnedImagery = Annotated[Imagery, Depends(owned(Imagery, "imagery_id"))]


def imagery_public(row: Imagery) -> ImageryPublic:
    data = {c: getattr(row, c) for c in ImageryPublic.model_fields if hasattr(row, c) and c != "footprint"}
    data["footprint"] = shapely.geometry.mapping(row.footprint) if row.footprint is not None else None
    return ImageryPublic.model_validate(data)


@router.post("", response_model=ImageryPublic, status_code=201, summary="Upload one GeoTIFF tile",
             responses=problem_responses(400, 403, 409, 413))  # fmt: skip
def upload_imagery(
    user: Supervisor,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    scope: ScopeDep,
    file: Annotated[UploadFile, File(description="GeoTIFF, georeferenced, 3–4 bands")],
    acquired_on: Annotated[dt.date | None, Form(description="Acquisition date; default: read from the file")] = None,
    sensor: Annotated[str | None, Form(max_length=50, examples=["GF-2"])] = None,
    district_code: Annotated[str | None, Form()] = None,
) -> ImageryPublic:
    declared = int(request.headers.get("content-length") or 0)
    if declared > settings.max_upload_bytes + 1024 * 1024:
        raise PayloadTooLargeError(f"upload of {declared:,} bytes is over the limit of {settings.max_upload_bytes:,}")
    filename = display_name(file.filename, "upload.tif")
    # Keep the original name (made safe): the detector reads the acquisition date from it when tags lack one.
    safe = safe_filename(filename)
    tmp = upload_tempdir(settings.data_dir, "imagery") / safe
    try:
        size, sha = store_upload(file.file, tmp, settings.max_upload_bytes, filename)
        existing = session.scalar(select(Imagery).where(Imagery.sha256 == sha))
        if existing is not None:
            raise ConflictError(f"{filename!r} was already uploaded as imagery {existing.id}", existing_id=existing.id)
        summary = inspect_upload(tmp, filename)
        date = acquired_on or summary.date
        if date is None:
            raise InvalidInputError(f"no acquisition date in {filename!r}; send acquired_on=YYYY-MM-DD")
        district = district_code or _district_of(session, summary.footprint, scope)
        scope.check(district)
        row = Imagery(
            filename=filename[:300],
            path="",
            sha256=sha,
            size_bytes=size,
            acquired_on=date,
            sensor=sensor,
            district_code=district,
            crs=summary.crs,
            width=summary.width,
            height=summary.height,
            band_count=summary.band_count,
            resolution_m=summary.resolution_m,
            uploaded_by=user.id,
        )
        set_geometry(row, summary.footprint, "footprint")
        dest = final_path(settings.data_dir, sha)
        move_into_place(tmp, dest)
        row.path = str(dest)
        session.add(row)
        session.commit()
        return imagery_public(row)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def _district_of(session: SessionDep, footprint: shapely.Geometry, scope: ScopeDep) -> str | None:
    centre = footprint.centroid
    for district in session.scalars(select(District).where(District.geometry.is_not(None))):
        if district.geometry.contains(centre):
            return district.code
    if scope.codes is not None and len(scope.codes) == 1:
        return next(iter(scope.codes))
    return None


@router.get("", response_model=ImageriesPublic, summary="Uploaded tiles, newest acquisition first")
def list_imagery(
    user: Reader,
    session: SessionDep,
    scope: ScopeDep,
    district: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ImageriesPublic:
    stmt = scope.apply(select(Imagery), Imagery.district_code)
    if district:
        stmt = stmt.where(Imagery.district_code == district)
    count = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(Imagery.acquired_on.desc(), Imagery.id).offset(offset).limit(limit)).all()
    return ImageriesPublic(data=[imagery_public(r) for r in rows], count=count)


@router.get("/{imagery_id}", response_model=ImageryPublic, summary="One tile with its footprint")
def read_imagery(user: Reader, imagery: OwnedImagery) -> ImageryPublic:
    return imagery_public(imagery)
