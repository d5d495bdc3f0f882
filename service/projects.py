"""The approved-project list in the database: import (upsert by 项目代码), search, edit, delete."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from service import audit
from service.errors import InvalidInputError
from service.models import District, ImportReport, Project, User, set_geometry
from service.project_import import PROJECT_FIELDS, ReadResult
from service.scope import DistrictScope

__all__ = ["ProjectQuery", "apply_import", "district_for_row", "search_projects", "parse_bbox", "AUDIT_FIELDS"]

AUDIT_FIELDS = PROJECT_FIELDS + ("area_m2",)


@dataclass(frozen=True)
class ProjectQuery:
    """Filters of ``GET /projects``; text filters are case-insensitive substrings."""

    q: str | None = None
    name: str | None = None
    code: str | None = None
    builder: str | None = None
    district: str | None = None
    bbox: tuple[float, float, float, float] | None = None


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``"min_lon,min_lat,max_lon,max_lat"`` → a tuple; None passes through."""
    if text is None or not text.strip():
        return None
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4 or parts[0] > parts[2] or parts[1] > parts[3]:
        raise InvalidInputError(f"bbox {text!r} must be min_lon,min_lat,max_lon,max_lat with min <= max")
    return parts  # type: ignore[return-value]


def bbox_clause(model: Any, bbox: tuple[float, float, float, float]) -> Any:
    min_x, min_y, max_x, max_y = bbox
    return (model.max_x >= min_x) & (model.min_x <= max_x) & (model.max_y >= min_y) & (model.min_y <= max_y)


def search_projects(scope: DistrictScope, query: ProjectQuery) -> Select[tuple[Project]]:
    stmt = scope.apply(select(Project), Project.district_code)
    for column, value in ((Project.name, query.name), (Project.code, query.code), (Project.builder, query.builder)):
        if value:
            stmt = stmt.where(func.lower(column).contains(value.lower(), autoescape=True))
    if query.q:
        needle = query.q.lower()
        stmt = stmt.where(
            or_(
                *(
                    func.lower(c).contains(needle, autoescape=True)
                    for c in (Project.name, Project.code, Project.builder)
                )
            )
        )
    if query.district:
        stmt = stmt.where(Project.district_code == query.district)
    if query.bbox:
        stmt = stmt.where(bbox_clause(Project, query.bbox))
    return stmt


def district_for_row(
    code: str | None, geometry: BaseGeometry, scope: DistrictScope, boundaries: Sequence[District]
) -> tuple[str | None, str | None]:
    """(district code, problem) for an imported row: its own or the upload's ``code``, else the boundary
    its ``geometry`` overlaps most, else the user's only district. Projects and priority zones share it."""
    if code is None:
        best = max(
            ((d.geometry.intersection(geometry).area, d.code) for d in boundaries if d.geometry is not None),
            default=(0.0, None),
        )
        code = best[1] if best[0] > 0 else None
    if code is None and scope.codes is not None and len(scope.codes) == 1:
        code = next(iter(scope.codes))
    if code is None:
        return None, "no district: add a 行政区代码 column, pass district_code, or import district boundaries"
    if code not in {d.code for d in boundaries}:
        return None, f"district {code!r} does not exist; import it first (soilwatch admin import-districts)"
    if not scope.allows(code):
        return None, f"district {code!r} is not one of yours"
    return code, None


def apply_import(
    session: Session,
    user: User,
    scope: DistrictScope,
    result: ReadResult,
    filename: str,
    *,
    district_code: str | None = None,
) -> tuple[ImportReport, list[BaseGeometry]]:
    """Create or update projects by 项目代码; returns the report and the areas that changed
    (old and new geometries), so that matching can re-run there."""
    if district_code is not None:
        scope.check(district_code)
    report = ImportReport(
        user_id=user.id, filename=filename[:300], format=result.format, source_crs=result.source_crs,
        encoding=result.encoding, rows_total=result.rows_total, field_mapping=result.field_mapping,
        repaired=result.repaired,
    )  # fmt: skip
    session.add(report)
    session.flush()
    boundaries = session.scalars(select(District)).all()
    codes = [row.values["code"] for row in result.rows]
    existing = {p.code: p for p in session.scalars(select(Project).where(Project.code.in_(codes)))} if codes else {}
    errors = [_issue(e.row, e.code, e.reason) for e in result.errors]
    changed: list[BaseGeometry] = []
    for row in result.rows:
        code = row.values["code"]
        district, problem = district_for_row(
            row.values.get("district_code") or district_code, row.geometry, scope, boundaries
        )
        project = existing.get(code)
        if problem is None and project is not None and not scope.allows(project.district_code):
            problem = f"项目代码 {code!r} belongs to district {project.district_code!r}, which is not yours"
        if problem is not None:
            errors.append(_issue(row.row, code, problem))
            continue
        values = {k: row.values.get(k) for k in PROJECT_FIELDS} | {"district_code": district, "area_m2": row.area_m2}
        if project is None:
            project = Project(attributes=row.attributes, import_id=report.id, **values)
            set_geometry(project, row.geometry)
            session.add(project)
            session.flush()
            audit.record(session, user, project, "imported", after=audit.snapshot(project, AUDIT_FIELDS),
                         reason=f"import #{report.id} {filename!r} row {row.row}")  # fmt: skip
            report.created += 1
            changed.append(row.geometry)
            continue
        before = audit.snapshot(project, AUDIT_FIELDS)
        same_geometry = project.geometry.normalize().equals_exact(row.geometry.normalize(), 1e-9)
        if before == audit.snapshot_values(values) and same_geometry and project.attributes == row.attributes:
            report.unchanged += 1
            continue
        if not same_geometry:
            changed.extend([project.geometry, row.geometry])
            set_geometry(project, row.geometry)
        for key, value in values.items():
            setattr(project, key, value)
        project.attributes = row.attributes
        project.import_id = report.id
        session.flush()
        after = audit.snapshot(project, AUDIT_FIELDS) | ({"geometry": "changed"} if not same_geometry else {})
        audit.record(session, user, project, "reimported", before=before, after=after,
                     reason=f"import #{report.id} {filename!r} row {row.row}")  # fmt: skip
        report.updated += 1
    report.rejected = len(errors)
    report.errors = sorted(errors, key=lambda e: (e["row"] is not None, e["row"] or 0))
    report.warnings = [_issue(w.row, w.code, w.reason) for w in result.warnings]
    return report, changed


def _issue(row: int | None, code: str | None, reason: str) -> dict[str, Any]:
    return {"row": row, "code": code, "reason": reason}
