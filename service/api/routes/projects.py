"""``/projects``: the approved-project list (监管清单): import, search, read, edit, delete."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

import shapely
from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import audit
from service.api.deps import (
    ScopeDep,
    SessionDep,
    SettingsDep,
    check_if_match,
    etag_of,
    owned,
    require_role,
)
from service.api.problems import problem_responses
from service.compliance import rematch_areas
from service.core.config import Settings
from service.errors import NotFoundError, PayloadTooLargeError
from service.imagery import display_name, upload_tempdir
from service.models import ImportReport, Project, User
from service.project_import import read_project_file
from service.projects import AUDIT_FIELDS, ProjectQuery, apply_import, parse_bbox, search_projects
from service.schemas import ImportReportPublic, ProjectPublic, ProjectsPublic, ProjectUpdate
from service.vocab import Role

__all__ = ["router", "project_public", "receive_upload"]

router = APIRouter(prefix="/projects", tags=["projects"])
Supervisor = Annotated[User, Depends(require_role(Role.supervisor))]
Reader = Annotated[User, Depends(require_role(Role.viewer))]
OwnedProject = Annotated[Project, Depends(owned(Project, "project_id"))]
_CHUNK = 1024 * 1024


def project_public(project: Project, *, geometry: bool = True) -> ProjectPublic:
    data: dict[str, Any] = {c: getattr(project, c) for c in ProjectPublic.model_fields if hasattr(project, c)}
    data["bbox"] = [project.min_x, project.min_y, project.max_x, project.max_y] if project.min_x is not None else None
    data["geometry"] = shapely.geometry.mapping(project.geometry) if geometry and project.geometry else None
    return ProjectPublic.model_validate(data)


@router.post(
    "/import",
    response_model=ImportReportPublic,
    status_code=201,
    summary="Import an approved-project list",
    responses=problem_responses(400, 403, 409, 413),
    description="Multipart upload of a zipped Shapefile (GBK or UTF-8; .cpg honoured), GeoPackage, GeoJSON, "
    "or CSV/XLSX with 经度/纬度 columns. Chinese field names (项目名称, 项目代码, 建设单位, 行业类别, 审批机关, "
    "批复文号, 批复时间, 防治责任范围面积 …) are mapped; any CRS is reprojected; re-importing updates projects "
    "with the same 项目代码. The report lists every rejected row with the reason.",
)
def import_projects(
    user: Supervisor,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    scope: ScopeDep,
    file: Annotated[UploadFile, File(description="The project list")],
    district_code: Annotated[str | None, Form(description="District for rows without one")] = None,
    crs: Annotated[str | None, Form(description="CRS when the file has none, e.g. EPSG:4527")] = None,
    encoding: Annotated[str | None, Form(description="Attribute encoding override, e.g. GBK")] = None,
) -> ImportReport:
    filename = display_name(file.filename)  # no NUL or control characters: stored in the report
    workdir = upload_tempdir(settings.data_dir, "import")
    try:
        path = receive_upload(request, file, settings, workdir)
        result = read_project_file(path, filename, settings, workdir=workdir, crs=crs, encoding=encoding)
        report, changed = apply_import(session, user, scope, result, filename, district_code=district_code)
        _after_projects_changed(session, settings, changed, f"project list import #{report.id} ({filename})", user)
        session.commit()
        return report
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def receive_upload(request: Request, file: UploadFile, settings: Settings, workdir: Path) -> Path:
    """Save an uploaded list (projects, priority zones) into ``workdir``, keeping its suffix; 413 over
    ``settings.max_import_bytes`` (checked on the declared length first, then while copying)."""
    declared = int(request.headers.get("content-length") or 0)
    if declared > settings.max_import_bytes + _CHUNK:
        raise PayloadTooLargeError(f"upload of {declared:,} bytes is over the limit of {settings.max_import_bytes:,}")
    path = workdir / ("upload" + "".join(c for c in _suffix(file.filename or "") if c.isalnum() or c == "."))
    _copy_limited(file, path, settings.max_import_bytes)
    return path


def _suffix(filename: str) -> str:
    dot = filename.rfind(".")
    return filename[dot:].lower() if dot >= 0 else ""


def _copy_limited(file: UploadFile, dest: Any, limit: int) -> None:
    size = 0
    with open(dest, "wb") as out:
        while chunk := file.file.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(
                    f"{file.filename!r} is larger than the limit of {limit:,} bytes; split the list"
                )
            out.write(chunk)


def _after_projects_changed(session: Session, settings: Settings, areas: list[Any], reason: str, user: User) -> None:
    """Re-run compliance matching where the list changed; patch histories record ``reason``."""
    rematch_areas(session, settings, areas, reason=reason, user=user)


@router.get("/imports/{import_id}", response_model=ImportReportPublic, summary="One import report")
def read_import(user: Reader, import_id: int, session: SessionDep, scope: ScopeDep) -> ImportReport:
    report = session.get(ImportReport, import_id)
    if report is None or report.subject != "projects" or (scope.codes is not None and report.user_id != user.id):
        raise NotFoundError(f"import report {import_id!r} not found (or not yours)")
    return report


@router.get("", response_model=ProjectsPublic, summary="Search approved projects")
def list_projects(
    user: Reader,
    session: SessionDep,
    settings: SettingsDep,
    scope: ScopeDep,
    q: Annotated[str | None, Query(description="Substring of name, code or builder")] = None,
    name: str | None = None,
    code: str | None = None,
    builder: str | None = None,
    district: str | None = None,
    bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat (EPSG:4326)")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1)] = 50,
    geometry: Annotated[bool, Query(description="Include GeoJSON geometries")] = False,
) -> ProjectsPublic:
    limit = min(limit, settings.page_size_max)
    stmt = search_projects(scope, ProjectQuery(q, name, code, builder, district, parse_bbox(bbox)))
    count = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(Project.code).offset(offset).limit(limit)).all()
    return ProjectsPublic(
        data=[project_public(p, geometry=geometry) for p in rows], count=count, offset=offset, limit=limit
    )


@router.get("/{project_id}", response_model=ProjectPublic, summary="One project with its geometry")
def read_project(user: Reader, project: OwnedProject, response: Response) -> ProjectPublic:
    response.headers["ETag"] = etag_of(project)
    return project_public(project)


@router.patch("/{project_id}", response_model=ProjectPublic, summary="Edit a project's attributes",
              responses=problem_responses(403, 409, 412))  # fmt: skip
def update_project(
    user: Supervisor,
    project: OwnedProject,
    body: ProjectUpdate,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    scope: ScopeDep,
    if_match: Annotated[str | None, Header(description="ETag from GET; 412 if someone saved first")] = None,
) -> ProjectPublic:
    check_if_match(if_match, project)
    changes = body.model_dump(exclude_unset=True)
    if "district_code" in changes:
        scope.check(changes["district_code"])
    before = audit.snapshot(project, AUDIT_FIELDS)
    for key, value in changes.items():
        setattr(project, key, value)
    session.flush()
    audit.record(session, user, project, "edited", before=before, after=audit.snapshot(project, AUDIT_FIELDS))
    if "vector_type" in changes:
        _after_projects_changed(session, settings, [project.geometry], f"project {project.code} edited", user)
    session.commit()
    response.headers["ETag"] = etag_of(project)
    return project_public(project)


@router.delete("/{project_id}", status_code=204, summary="Remove a project from the list",
               responses=problem_responses(403, 409, 412))  # fmt: skip
def delete_project(
    user: Supervisor,
    project: OwnedProject,
    session: SessionDep,
    settings: SettingsDep,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    check_if_match(if_match, project)
    audit.record(session, user, project, "deleted", before=audit.snapshot(project, AUDIT_FIELDS))
    geometry = project.geometry
    code = project.code
    session.delete(project)
    session.flush()
    _after_projects_changed(session, settings, [geometry], f"project {code} deleted", user)
    session.commit()
    return Response(status_code=204)
