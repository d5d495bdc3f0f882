"""``/scans``: start a detection over two dates in the background, follow its progress, cancel it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import func, select

from service.api.deps import ScopeDep, SessionDep, owned, require_role
from service.api.problems import problem_responses
from service.models import Scan, User
from service.scans import ScanRequest, cancel_scan, category_counts, create_scan
from service.schemas import ScanCreate, ScanPublic, ScansPublic
from service.vocab import Role, ScanStatus

__all__ = ["router", "scan_public"]

router = APIRouter(prefix="/scans", tags=["scans"])
Reader = Annotated[User, Depends(require_role(Role.viewer))]
Supervisor = Annotated[User, Depends(require_role(Role.supervisor))]
OwnedScan = Annotated[Scan, Depends(owned(Scan, "scan_id"))]


def scan_public(scan: Scan, counts: dict[str, int] | None = None) -> ScanPublic:
    data: dict[str, Any] = {c: getattr(scan, c) for c in ScanPublic.model_fields if hasattr(scan, c)}
    options = scan.options or {}
    data |= {"before_date": options.get("before_date"), "after_date": options.get("after_date"),
             "mode": options.get("mode"), "bbox": options.get("bbox"), "counts": counts or {}}  # fmt: skip
    return ScanPublic.model_validate(data)


def _wake_worker(request: Request) -> None:
    worker = getattr(request.app.state, "scan_worker", None)
    if worker is not None:
        worker.wake()


@router.post(
    "",
    response_model=ScanPublic,
    status_code=202,
    summary="Start a scan (runs in the background)",
    responses=problem_responses(403, 404, 409),
    description="Body: `{before_imagery_id, after_imagery_id}`; or an area (`district_code` or `bbox`) with "
    '`before_date` and `after_date`; or `{"mode": "latest"}` (newest imagery against the previous date, '
    "optionally with an area). Answers 202 with the queued scan; follow it with `GET /scans/{id}`. "
    "Found patches are stored and judged against the approved-project list. 409 when the same scan is "
    "already queued or running.",
)
def start_scan(
    user: Supervisor, body: ScanCreate, session: SessionDep, scope: ScopeDep, request: Request
) -> ScanPublic:
    scan_request = ScanRequest(
        before_imagery_id=body.before_imagery_id,
        after_imagery_id=body.after_imagery_id,
        district_code=body.district_code,
        bbox=tuple(body.bbox) if body.bbox else None,  # type: ignore[arg-type]
        before_date=body.before_date,
        after_date=body.after_date,
        latest=body.mode == "latest",
    )
    scan = create_scan(session, scope, user, scan_request)
    session.commit()
    _wake_worker(request)
    return scan_public(scan)


@router.get("", response_model=ScansPublic, summary="Scans, newest first")
def list_scans(
    user: Reader,
    session: SessionDep,
    scope: ScopeDep,
    status: Annotated[ScanStatus | None, Query(description="queued, running, succeeded, failed, cancelled")] = None,
    district: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ScansPublic:
    stmt = scope.apply(select(Scan), Scan.district_code)
    if status is not None:
        stmt = stmt.where(Scan.status == status.value)
    if district:
        stmt = stmt.where(Scan.district_code == district)
    count = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(Scan.id.desc()).offset(offset).limit(limit)).all()
    counts = category_counts(session, [s.id for s in rows])
    return ScansPublic(data=[scan_public(s, counts.get(s.id)) for s in rows], count=count, offset=offset, limit=limit)


@router.get("/{scan_id}", response_model=ScanPublic, summary="One scan: status, progress, counts, error")
def read_scan(user: Reader, scan: OwnedScan, session: SessionDep) -> ScanPublic:
    return scan_public(scan, category_counts(session, [scan.id])[scan.id])


@router.post(
    "/{scan_id}/cancel",
    response_model=ScanPublic,
    status_code=202,
    summary="Cancel a scan",
    responses=problem_responses(403, 409),
    description="A queued scan is cancelled at once; a running one stops at its next progress report "
    "(`cancel_requested` is true until then) and stores nothing. 409 when the scan has already ended.",
)
def cancel(user: Supervisor, scan: OwnedScan, session: SessionDep, scope: ScopeDep) -> ScanPublic:
    scan = cancel_scan(session, scope, user, scan)
    session.commit()
    return scan_public(scan, category_counts(session, [scan.id])[scan.id])
