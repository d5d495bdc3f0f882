"""``/patches``: suspected disturbance patches, their judgement, history and review (复核)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import shapely
from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import BaseModel
from sqlalchemy import select

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
from service.chips import chip_source, render_chip_png
from service.errors import InvalidInputError
from service.models import AuditEvent, Patch, PatchMatch, PriorityZone, Project, Review, User
from service.patches import COUNT_CAP, PatchQuery, page_patches, search_patches
from service.projects import parse_bbox
from service.schemas import (
    AuditEventPublic,
    HistoryPublic,
    PatchesPublic,
    PatchMatchPublic,
    PatchPublic,
    PatchUpdate,
    PatchZonePublic,
    ReviewCreate,
    ReviewPublic,
)
from service.scope import DistrictScope
from service.vocab import CATEGORY_LABELS, VERDICT_LABELS, Category, ReviewStatus, Role, Verdict
from service.zones import kind_label, parse_zone_filter, zones_of

__all__ = ["router", "patch_public", "patch_query"]

router = APIRouter(prefix="/patches", tags=["patches"])
Reader = Annotated[User, Depends(require_role(Role.viewer))]
Inspector = Annotated[User, Depends(require_role(Role.inspector))]
Supervisor = Annotated[User, Depends(require_role(Role.supervisor))]
OwnedPatch = Annotated[Patch, Depends(owned(Patch, "patch_id"))]
REVIEW_FIELDS = ("review_status", "verdict", "assignee_id", "disturbance_type")


#: PatchPublic fields read straight from the row (the others are computed in patch_public); worked out once,
#: not per patch and request.
_ROW_FIELDS = tuple(
    c for c in PatchPublic.model_fields
    if c not in ("geometry", "bbox", "matches", "priority_zones") and hasattr(Patch, c)
)  # fmt: skip


def patch_public(
    patch: Patch,
    *,
    geometry: bool = True,
    projects: dict[int, Project] | None = None,
    zones: list[PriorityZone] | None = None,
    matches: list[Any] | None = None,
) -> PatchPublic:
    """The answer for one patch. ``matches``: its :class:`PatchMatch` rows (or rows with the same
    attributes) when the caller read them already, else ``patch.matches``."""
    # geometry is filled in below, and only when asked: reading it here would load a deferred geometry
    # row by row (the list defers it)
    row = patch.__dict__  # loaded column values; a missing (expired or deferred) one is read through getattr
    data: dict[str, Any] = {c: row[c] if c in row else getattr(patch, c) for c in _ROW_FIELDS}
    data["category_label"] = CATEGORY_LABELS.get(Category(patch.category)) if patch.category else None
    data["verdict_label"] = VERDICT_LABELS.get(Verdict(patch.verdict)) if patch.verdict else None
    data["bbox"] = [patch.min_x, patch.min_y, patch.max_x, patch.max_y]
    data["geometry"] = shapely.geometry.mapping(patch.geometry) if geometry else None
    projects = projects or {}
    data["matches"] = [
        PatchMatchPublic(
            project_id=m.project_id,
            project_code=getattr(projects.get(m.project_id), "code", None),
            project_name=getattr(projects.get(m.project_id), "name", None),
            overlap_area_m2=m.overlap_area_m2,
            overlap_share=m.overlap_share,
        )
        for m in (patch.matches if matches is None else matches)
    ]
    data["priority_zones"] = [
        PatchZonePublic(id=z.id, name=z.name, kind=z.kind, kind_label=kind_label(z.kind), weight=z.weight)
        for z in zones or ()
    ]
    return PatchPublic.model_validate(data)


async def patch_query(
    district: str | None = None,
    category: Annotated[list[str] | None, Query(description="Repeat for several; e.g. suspected_unapproved")] = None,
    review_status: str | None = None,
    verdict: str | None = None,
    after_from: Annotated[dt.date | None, Query(description="After-image date from (inclusive)")] = None,
    after_to: Annotated[dt.date | None, Query(description="After-image date to (inclusive)")] = None,
    min_area_m2: Annotated[float | None, Query(ge=0)] = None,
    bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat")] = None,
    min_priority: int | None = None,
    scan_id: int | None = None,
    priority_zone: Annotated[str | None, Query(description="A priority-zone id, or any: patches inside it")] = None,
    min_confidence: Annotated[float | None, Query(
        ge=0, le=1, description="The detector's confidence (mean change probability of the patch, 0-1) at least "
                                "this; patches without one (imported without it) do not match")] = None,
) -> PatchQuery:
    """The filters shared by ``GET /patches`` and the exports (pure parsing: ``async`` keeps it off the thread pool)."""
    known = {c.value for c in Category}
    for value in category or ():
        if value not in known:
            raise InvalidInputError(f"unknown category {value!r}; use one of {', '.join(sorted(known))}")
    return PatchQuery(district, tuple(category or ()), review_status, verdict, after_from, after_to, min_area_m2,
                      parse_bbox(bbox), min_priority, scan_id, parse_zone_filter(priority_zone),
                      min_confidence)  # fmt: skip


@router.get("", response_model=PatchesPublic, summary="Patches, highest priority first")
def list_patches(
    user: Reader,
    session: SessionDep,
    settings: SettingsDep,
    scope: ScopeDep,
    query: Annotated[PatchQuery, Depends(patch_query)],
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1)] = 50,
    geometry: bool = False,
    cursor: Annotated[
        str | None, Query(description="next_cursor of the previous page: the next page, as fast as the first")
    ] = None,
    exact_count: Annotated[
        bool, Query(description=f"Count every match; by default the count stops at {COUNT_CAP:,}")
    ] = False,
) -> Response:
    """Ordered by priority, then area (largest first), then id. Page with ``offset`` or, faster for deep
    pages, with ``cursor``; ``count`` is exact up to 10,000 matches (``count_exact``) unless ``exact_count``."""
    limit = min(limit, settings.page_size_max)
    page = page_patches(
        session,
        search_patches(scope, query),
        limit=limit,
        offset=offset,
        cursor=cursor,
        exact_count=exact_count,
        geometry=geometry,
        load_matches=False,
    )
    matches = _matches_of(session, [p.id for p in page.rows])
    return json_response(
        PatchesPublic(
            data=[patch_public(p, geometry=geometry, matches=matches.get(p.id, [])) for p in page.rows],
            count=page.count,
            count_exact=page.count_exact,
            offset=offset,
            limit=limit,
            next_cursor=page.next_cursor,
        )
    )


def _matches_of(session: SessionDep, ids: list[int]) -> dict[int, list[Any]]:
    """The match rows of patches ``ids`` (patch id → rows, largest overlap first, as ``Patch.matches``), in
    one query of plain rows: filling 50 ORM collections cost more than the rest of the page."""
    if not ids:
        return {}
    out: dict[int, list[Any]] = {}
    stmt = (
        select(PatchMatch.patch_id, PatchMatch.project_id, PatchMatch.overlap_area_m2, PatchMatch.overlap_share)
        .where(PatchMatch.patch_id.in_(ids))
        .order_by(PatchMatch.patch_id, PatchMatch.overlap_area_m2.desc(), PatchMatch.id)
    )
    for row in session.execute(stmt):
        out.setdefault(row.patch_id, []).append(row)
    return out


def _projects_of(session: SessionDep, patch: Patch) -> dict[int, Project]:
    ids = [m.project_id for m in patch.matches]
    return {p.id: p for p in session.scalars(select(Project).where(Project.id.in_(ids)))} if ids else {}


@router.get("/{patch_id}", response_model=PatchPublic, summary="One patch with geometry and matched projects")
def read_patch(user: Reader, patch: OwnedPatch, session: SessionDep) -> Response:
    body = patch_public(patch, projects=_projects_of(session, patch), zones=zones_of(session, patch))
    return json_response(body, headers={"ETag": etag_of(patch)})


def json_response(body: BaseModel, *, headers: dict[str, str] | None = None) -> Response:
    """``body`` as JSON, the bytes FastAPI would send for it as the route's ``response_model``. A route that
    returns a model instead has FastAPI validate it once more, in a second thread-pool hop; the routes
    build a validated model already."""
    return Response(body.model_dump_json(by_alias=True), media_type="application/json", headers=headers)


@router.get("/{patch_id}/history", response_model=HistoryPublic, summary="Every change: who, when, what, why")
def patch_history(user: Reader, patch: OwnedPatch, session: SessionDep) -> HistoryPublic:
    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.entity_type == "patches", AuditEvent.entity_id == patch.id)
        .order_by(AuditEvent.at, AuditEvent.id)
    ).all()
    reviews = session.scalars(select(Review).where(Review.patch_id == patch.id).order_by(Review.id)).all()
    return HistoryPublic(
        data=[AuditEventPublic.model_validate(e) for e in events],
        reviews=[ReviewPublic.model_validate(r) for r in reviews],
    )


@router.patch("/{patch_id}", response_model=PatchPublic, summary="Assign to an inspector, or close (销号)",
              responses=problem_responses(403, 409, 412))  # fmt: skip
def update_patch(
    user: Supervisor,
    patch: OwnedPatch,
    body: PatchUpdate,
    session: SessionDep,
    scope: ScopeDep,
    response: Response,
    if_match: Annotated[str | None, Header(description="ETag from GET; 412 if someone saved first")] = None,
) -> PatchPublic:
    check_if_match(if_match, patch)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("assignee_id") is not None:
        _check_assignee(session, scope, patch, changes["assignee_id"])
        changes.setdefault("review_status", ReviewStatus.assigned.value)
    before = audit.snapshot(patch, REVIEW_FIELDS)
    for key, value in changes.items():
        setattr(patch, key, value)
    session.flush()
    audit.record(session, user, patch, "updated", before=before, after=audit.snapshot(patch, REVIEW_FIELDS))
    session.commit()
    response.headers["ETag"] = etag_of(patch)
    return patch_public(patch, projects=_projects_of(session, patch), zones=zones_of(session, patch))


def _check_assignee(session: SessionDep, scope: DistrictScope, patch: Patch, assignee_id: int) -> None:
    assignee = session.get(User, assignee_id)
    if assignee is None or assignee.role not in (Role.inspector, Role.supervisor, Role.admin):
        raise InvalidInputError(f"assignee_id {assignee_id!r} is not an inspector; pick a user with that role")
    if not DistrictScope.of(assignee).allows(patch.district_code):
        raise InvalidInputError(f"inspector {assignee.name!r} does not work in district {patch.district_code!r}")


@router.post(
    "/{patch_id}/reviews",
    response_model=PatchPublic,
    status_code=201,
    summary="Record a review verdict (needs If-Match)",
    responses=problem_responses(403, 409, 412, 428),
    description="Send `If-Match` with the ETag of your last GET: if someone else saved the patch in between, "
    "the answer is 412 and nothing is overwritten (428 without If-Match).",
)
def create_review(
    user: Inspector,
    patch: OwnedPatch,
    body: ReviewCreate,
    session: SessionDep,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> PatchPublic:
    check_if_match(if_match, patch, required=True)
    before = audit.snapshot(patch, REVIEW_FIELDS)
    review = Review(patch_id=patch.id, reviewer_id=user.id, verdict=body.verdict, note=body.note, photos=body.photos)
    session.add(review)
    patch.verdict = body.verdict
    patch.review_status = ReviewStatus.reviewed.value
    session.flush()
    audit.record(session, user, patch, "reviewed", before=before, after=audit.snapshot(patch, REVIEW_FIELDS),
                 reason=body.note)  # fmt: skip
    session.commit()
    response.headers["ETag"] = etag_of(patch)
    return patch_public(patch, projects=_projects_of(session, patch), zones=zones_of(session, patch))


_CHIP_DOC = (
    "PNG crop of the {which} image around the patch (its bbox plus a margin), RGB from the tile's band map, "
    "2–98 % stretch, the patch outline in yellow. Rendered once, then served from the cache under the data dir."
)


def _chip(patch: Patch, session: SessionDep, settings: SettingsDep, which: str) -> Response:
    source = chip_source(session, settings, patch, which)
    # Rendering reads only the file: give the connection back first (as the map tiles do). A review page
    # asks for two chips at once, and renders used to hold the pool (503 for everything else under load).
    session.close()
    png = render_chip_png(source)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/{patch_id}/chips/before.png",
    response_class=Response,
    summary="Before-image chip (PNG)",
    description=_CHIP_DOC.format(which="before"),
    responses={200: {"content": {"image/png": {}}}},
)
def before_chip(user: Reader, patch: OwnedPatch, session: SessionDep, settings: SettingsDep) -> Response:
    return _chip(patch, session, settings, "before")


@router.get(
    "/{patch_id}/chips/after.png",
    response_class=Response,
    summary="After-image chip (PNG)",
    description=_CHIP_DOC.format(which="after"),
    responses={200: {"content": {"image/png": {}}}},
)
def after_chip(user: Reader, patch: OwnedPatch, session: SessionDep, settings: SettingsDep) -> Response:
    return _chip(patch, session, settings, "after")
