"""Scans (检测任务): what to compare, the queue in the ``scans`` table, and one run of the detector.

A scan compares one before tile with one after tile, optionally limited to an area (a district's
boundary or a lon/lat bbox). :func:`create_scan` resolves a request — an explicit pair, an area with
two dates, or "latest vs previous" — to two uploaded tiles and queues the scan;
:mod:`service.scan_worker` claims queued scans and calls :func:`run_scan`.

Restart safety: a run writes its patches and its final status in **one** transaction, guarded by a
compare-and-set on ``(status, worker)``. A run interrupted anywhere (crash, kill, shutdown) has
written nothing but progress, so running it again never duplicates patches; a second worker that
took the scan over makes the first one's commit fail instead of doubling the results.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import geopandas as gpd
from pyproj import CRS
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service import audit
from service.core.config import Settings
from service.errors import ConflictError, InvalidInputError, NotFoundError, ServiceError
from service.geometry import WGS84, reproject
from service.models import District, Imagery, Patch, Scan, User, utcnow
from service.patches import ingest_detections
from service.projects import bbox_clause
from service.scope import DistrictScope
from service.vocab import ScanStatus

__all__ = [
    "DEFAULT_MODEL",
    "TERMINAL",
    "ScanRequest",
    "ScanStopped",
    "ScanCancelled",
    "ScanInterrupted",
    "ScanLost",
    "create_scan",
    "cancel_scan",
    "run_scan",
    "category_counts",
    "updated_rows",
]

log = logging.getLogger(__name__)

#: The model scans use (a registered name; never a path from a request, which could name any file). ``auto``: the
#: learned model for two dates at 5 m or finer, else the spectral baseline (detector.auto); patches record which ran.
DEFAULT_MODEL = "auto"
TERMINAL = frozenset({ScanStatus.succeeded.value, ScanStatus.failed.value, ScanStatus.cancelled.value})
#: Share of the progress bar given to detection; ingest and matching take the rest.
_DETECT_SHARE = 0.9


class ScanStopped(ServiceError):
    """A run stopped before its end (raised from the detector's progress callback)."""


class ScanCancelled(ScanStopped):
    """Someone asked to cancel the scan."""


class ScanInterrupted(ScanStopped):
    """The service is shutting down; the scan goes back to the queue."""


class ScanLost(ScanStopped):
    """Another worker took the scan over (this one was thought dead); drop the results."""


@dataclass(frozen=True)
class ScanRequest:
    """What to compare: both imagery ids; or an area (district or lon/lat bbox) and two dates; or ``latest``."""

    before_imagery_id: int | None = None
    after_imagery_id: int | None = None
    district_code: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    before_date: dt.date | None = None
    after_date: dt.date | None = None
    latest: bool = False

    def __post_init__(self) -> None:
        ids = (self.before_imagery_id, self.after_imagery_id)
        dates = (self.before_date, self.after_date)
        if self.district_code is not None and self.bbox is not None:
            raise InvalidInputError("give either district_code or bbox as the area, not both")
        if self.bbox is not None:
            left, bottom, right, top = self.bbox
            if not (-180 <= left < right <= 180 and -90 <= bottom < top <= 90):
                raise InvalidInputError(f"bbox {list(self.bbox)!r} is not [min_lon, min_lat, max_lon, max_lat]")
        if self.latest:
            if any(v is not None for v in ids + dates):
                raise InvalidInputError('"mode": "latest" picks the imagery itself; drop the imagery ids and dates')
            return
        if any(v is not None for v in ids):
            if None in ids:
                raise InvalidInputError("give both before_imagery_id and after_imagery_id")
            if any(v is not None for v in dates):
                raise InvalidInputError("give either the two imagery ids or the two dates, not both")
            if self.before_imagery_id == self.after_imagery_id:
                raise InvalidInputError("before_imagery_id and after_imagery_id are the same tile")
            return
        if None in dates or (self.district_code is None and self.bbox is None):
            raise InvalidInputError(
                'say what to compare: {"before_imagery_id", "after_imagery_id"}, or an area ("district_code" or '
                '"bbox") with "before_date" and "after_date", or {"mode": "latest"}'
            )
        if self.before_date >= self.after_date:  # type: ignore[operator]
            raise InvalidInputError(f"before_date {self.before_date} must be earlier than after_date {self.after_date}")

    @property
    def mode(self) -> str:
        if self.latest:
            return "latest"
        return "pair" if self.after_imagery_id is not None else "dates"


def updated_rows(session: Session, statement: Any) -> int:
    """Execute an UPDATE and return how many rows it changed (the compare-and-set primitive of the queue)."""
    return int(cast(CursorResult[Any], session.execute(statement)).rowcount)


# ---------------------------------------------------------------------------------------------- queueing
def create_scan(session: Session, scope: DistrictScope, user: User, request: ScanRequest) -> Scan:
    """Resolve ``request`` to a before/after pair of tiles the user may see and queue a scan.

    422 when no suitable imagery exists, 404 for tiles or districts outside the user's districts,
    403 when the scan's district is not the user's, 409 when the same scan is already queued or running.
    """
    area, district = _area(session, scope, request)
    if request.mode == "pair":
        before = _visible_imagery(session, scope, request.before_imagery_id)
        after = _visible_imagery(session, scope, request.after_imagery_id)
    else:
        before, after = _pick_pair(session, scope, request, area, district)
    if before.acquired_on >= after.acquired_on:
        raise InvalidInputError(
            f"the before tile (imagery {before.id}, {before.acquired_on}) must be older than the after tile "
            f"(imagery {after.id}, {after.acquired_on}); swap them"
        )
    common = _footprint(before).intersection(_footprint(after))
    if area is not None:
        common = common.intersection(area)
    if common.is_empty or common.area == 0:
        raise InvalidInputError(
            f"imagery {before.id} and {after.id} do not overlap" + (" inside the requested area" if area else "")
        )
    if district is None:
        district = _district_at(session, common) or after.district_code
    scope.check(district)
    options: dict[str, Any] = {
        "mode": request.mode,
        "bbox": list(request.bbox) if request.bbox else None,
        # JSON-shaped (lists, not tuples) so that it compares equal to what the database gives back
        "area": json.loads(json.dumps(mapping(area))) if area is not None else None,
        "before_date": before.acquired_on.isoformat(),
        "after_date": after.acquired_on.isoformat(),
    }
    running = session.scalars(
        select(Scan).where(
            Scan.before_imagery_id == before.id,
            Scan.after_imagery_id == after.id,
            Scan.status.in_([ScanStatus.queued.value, ScanStatus.running.value]),
        )
    )
    duplicate = next((s for s in running if s.options.get("area") == options["area"]), None)
    if duplicate is not None:
        raise ConflictError(
            f"the same scan is already {duplicate.status} as scan {duplicate.id}", existing_id=duplicate.id
        )
    scan = Scan(
        status=ScanStatus.queued.value,
        before_imagery_id=before.id,
        after_imagery_id=after.id,
        district_code=district,
        model=DEFAULT_MODEL,
        options=options,
        created_by=user.id,
        progress=0.0,
        patch_count=0,
        cancel_requested=False,
        attempts=0,
    )
    session.add(scan)
    session.flush()
    summary = {"before_imagery_id": before.id, "after_imagery_id": after.id, "mode": request.mode,
               "district_code": district}  # fmt: skip
    audit.record(session, user, scan, "created", after=summary)
    return scan


def cancel_scan(session: Session, scope: DistrictScope, user: User, scan: Scan) -> Scan:
    """Cancel a queued scan at once, or ask a running one to stop (it stops at its next progress report)."""
    scope.check(scan.district_code)
    if scan.status in TERMINAL:
        raise ConflictError(f"scan {scan.id} has already {scan.status}; there is nothing to cancel")
    message = f"cancelled by {user.name}"
    # Conditional updates: the worker may claim the scan between our read and our write.
    now = utcnow()
    done = updated_rows(
        session,
        update(Scan)
        .where(Scan.id == scan.id, Scan.status == ScanStatus.queued.value)
        .values(status=ScanStatus.cancelled.value, cancel_requested=True, finished_at=now, message=message),
    )
    if not done:
        updated_rows(
            session,
            update(Scan)
            .where(Scan.id == scan.id, Scan.status == ScanStatus.running.value)
            .values(cancel_requested=True, message=f"cancel requested by {user.name}"),
        )
    session.refresh(scan)
    audit.record(session, user, scan, "cancelled" if done else "cancel_requested", after={"status": scan.status})
    return scan


def category_counts(session: Session, scan_ids: list[int]) -> dict[int, dict[str, int]]:
    """``{scan_id: {category: number of patches}}`` for the given scans."""
    if not scan_ids:
        return {}
    rows = session.execute(
        select(Patch.scan_id, Patch.category, func.count())
        .where(Patch.scan_id.in_(scan_ids))
        .group_by(Patch.scan_id, Patch.category)
    ).all()
    out: dict[int, dict[str, int]] = {i: {} for i in scan_ids}
    for scan_id, category, n in rows:
        if scan_id is not None:
            out[scan_id][category or "unjudged"] = int(n)
    return out


def _area(session: Session, scope: DistrictScope, request: ScanRequest) -> tuple[BaseGeometry | None, str | None]:
    """The requested area in lon/lat (None: the whole overlap) and its district, if one was named."""
    if request.bbox is not None:
        return box(*request.bbox), None
    if request.district_code is None:
        return None, None
    district = session.get(District, request.district_code)
    if district is None or not scope.allows(district.code):
        raise NotFoundError(f"district {request.district_code!r} not found (or not one of yours)")
    return district.geometry, district.code


def _visible_imagery(session: Session, scope: DistrictScope, ident: int | None) -> Imagery:
    row = session.get(Imagery, ident) if ident is not None else None
    if row is None or not scope.allows(row.district_code):
        raise NotFoundError(f"imagery {ident!r} not found (or not in your districts); list it with GET /imagery")
    return row


def _footprint(row: Imagery) -> BaseGeometry:
    if row.footprint is None:
        raise InvalidInputError(f"imagery {row.id} has no footprint; upload it again")
    return row.footprint


def _pick_pair(
    session: Session, scope: DistrictScope, request: ScanRequest, area: BaseGeometry | None, district: str | None
) -> tuple[Imagery, Imagery]:
    """The two tiles covering ``area`` best: nearest to the requested dates, or the latest two dates."""
    stmt = scope.apply(select(Imagery), Imagery.district_code).where(Imagery.footprint.is_not(None))
    if area is not None:
        stmt = stmt.where(bbox_clause(Imagery, area.bounds))
    elif district is not None:
        stmt = stmt.where(Imagery.district_code == district)
    rows = list(session.scalars(stmt))
    where = f"district {district}" if district else "the bbox" if area is not None else "your districts"

    def cover(row: Imagery, target: BaseGeometry | None) -> float:
        return 1.0 if target is None else float(_footprint(row).intersection(target).area)  # ranking only: degrees²

    rows = [r for r in rows if cover(r, area) > 0]
    if request.latest:
        if not rows:
            raise InvalidInputError(f"no imagery covers {where}; upload tiles first (POST /imagery)")
        after = max(rows, key=lambda r: (r.acquired_on, cover(r, area), r.id))
        earlier = [r for r in rows if r.acquired_on < after.acquired_on and cover(r, _footprint(after)) > 0]
        if not earlier:
            raise InvalidInputError(
                f"only one date of imagery ({after.acquired_on}) covers {where}; upload an earlier tile to compare"
            )
        before = max(earlier, key=lambda r: (r.acquired_on, cover(r, _footprint(after)), r.id))
        return before, after
    if request.before_date is None or request.after_date is None:  # ScanRequest ensures it; for the type checker
        raise InvalidInputError("before_date and after_date are needed")
    if len({r.acquired_on for r in rows}) < 2:
        dates = ", ".join(sorted({str(r.acquired_on) for r in rows})) or "none"
        raise InvalidInputError(f"imagery of two dates must cover {where} (dates found: {dates}); upload tiles first")

    def nearest(candidates: list[Imagery], day: dt.date) -> Imagery:
        return min(candidates, key=lambda r: (abs((r.acquired_on - day).days), -cover(r, area), r.id))

    before = nearest(rows, request.before_date)
    later = [r for r in rows if r.acquired_on > before.acquired_on]
    if not later:
        raise InvalidInputError(f"no imagery of {where} is newer than {before.acquired_on} (imagery {before.id})")
    return before, nearest(later, request.after_date)


def _district_at(session: Session, geom: BaseGeometry) -> str | None:
    centre = geom.representative_point()
    for district in session.scalars(select(District).where(District.geometry.is_not(None))):
        if district.geometry is not None and district.geometry.contains(centre):
            return district.code
    return None


# ---------------------------------------------------------------------------------------------- running
@dataclass(frozen=True)
class _Job:
    scan_id: int
    before_path: str
    after_path: str
    before_crs: str
    before_date: str
    after_date: str
    model: str
    area: BaseGeometry | None
    district_code: str | None
    area_is_district: bool


def _load_job(session: Session, scan_id: int) -> _Job:
    scan = session.get(Scan, scan_id)
    if scan is None:
        raise NotFoundError(f"scan {scan_id} does not exist")
    before = session.get(Imagery, scan.before_imagery_id) if scan.before_imagery_id else None
    after = session.get(Imagery, scan.after_imagery_id)
    if before is None or after is None:
        raise NotFoundError(f"the imagery of scan {scan_id} was deleted")
    area = scan.options.get("area")
    return _Job(
        scan_id=scan.id,
        before_path=before.path,
        after_path=after.path,
        before_crs=before.crs or "",
        before_date=before.acquired_on.isoformat(),
        after_date=after.acquired_on.isoformat(),
        model=scan.model or DEFAULT_MODEL,
        area=shape(area) if area else None,
        district_code=scan.district_code,
        area_is_district=bool(area) and not scan.options.get("bbox"),
    )


class _Progress:
    """The detector's progress callback: writes progress (throttled) and stops the run when asked to."""

    def __init__(
        self, factory: sessionmaker[Session], scan_id: int, worker: str, should_stop: Callable[[], bool], every_s: float
    ) -> None:
        self.factory, self.scan_id, self.worker = factory, scan_id, worker
        self.should_stop, self.every_s = should_stop, every_s
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        self.report(_DETECT_SHARE * done / max(total, 1), force=done >= total)

    def report(self, fraction: float, *, force: bool = False) -> None:
        if self.should_stop():
            raise ScanInterrupted("the service is shutting down")
        now = time.monotonic()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        try:
            with self.factory() as session:
                mine = updated_rows(
                    session,
                    update(Scan)
                    .where(Scan.id == self.scan_id, Scan.worker == self.worker, Scan.status == ScanStatus.running.value)
                    .values(progress=round(fraction, 4), heartbeat_at=utcnow()),
                )
                cancel = session.scalar(select(Scan.cancel_requested).where(Scan.id == self.scan_id))
                session.commit()
        except (OperationalError, InterfaceError) as exc:  # the database restarts: detect on, report next time
            log.warning("scan %s: progress not saved: %s", self.scan_id, str(exc).splitlines()[0])
            return
        if not mine:
            raise ScanLost(f"scan {self.scan_id} is no longer run by {self.worker}")
        if cancel:
            raise ScanCancelled(f"scan {self.scan_id} was cancelled")


def run_scan(
    factory: sessionmaker[Session],
    settings: Settings,
    scan_id: int,
    *,
    worker: str,
    should_stop: Callable[[], bool] = lambda: False,
    report_every_s: float = 0.5,
) -> str:
    """Run a scan claimed by ``worker`` (status ``running``) to its end; returns the final status.

    Detection runs outside any transaction; progress is written every ``report_every_s``. The
    patches and the final status are committed together (see the module docstring).
    """
    from detector.errors import DetectorError
    from detector.pipeline import DetectOptions, detect_pair

    progress = _Progress(factory, scan_id, worker, should_stop, report_every_s)
    try:
        with factory() as session:
            job = _load_job(session, scan_id)
        options = DetectOptions(
            model=job.model,
            bounds=_bounds_in(job.area, job.before_crs),
            before_date=job.before_date,
            after_date=job.after_date,
        )
        result = detect_pair(job.before_path, job.after_path, options=options, progress=progress)
        progress.report(_DETECT_SHARE, force=True)  # a last look for a cancel before writing anything
        return _store(factory, settings, job, worker, result.patches)
    except ScanStopped as stop:
        return _stopped(factory, scan_id, worker, stop)
    except (DetectorError, ServiceError) as exc:
        return _finish(factory, scan_id, worker, ScanStatus.failed, str(exc))
    except (OperationalError, InterfaceError):
        raise  # the database restarted or is unreachable: not the scan's fault, the worker queues it again
    except Exception as exc:  # a bug or an environment problem: keep the worker alive, say what happened
        log.exception("scan %s failed", scan_id)
        return _finish(factory, scan_id, worker, ScanStatus.failed, f"unexpected error: {type(exc).__name__}: {exc}")


def _bounds_in(area: BaseGeometry | None, crs: str) -> tuple[float, float, float, float] | None:
    """``area`` (lon/lat) as ``(left, bottom, right, top)`` in the before image's CRS."""
    if area is None:
        return None
    if not crs:
        raise InvalidInputError("the before imagery has no CRS recorded; upload it again")
    return tuple(reproject(area, WGS84, CRS.from_user_input(crs)).bounds)  # type: ignore[return-value]


def _store(factory: sessionmaker[Session], settings: Settings, job: _Job, worker: str, frame: gpd.GeoDataFrame) -> str:
    with factory() as session:
        # Compare-and-set first: it takes the write lock (SQLite) / row lock (PostgreSQL) and proves
        # the scan is still ours and not cancelled before anything is written.
        now = utcnow()
        mine = updated_rows(
            session,
            update(Scan)
            .where(
                Scan.id == job.scan_id,
                Scan.worker == worker,
                Scan.status == ScanStatus.running.value,
                Scan.cancel_requested.is_(False),
            )  # fmt: skip
            .values(status=ScanStatus.succeeded.value, progress=1.0, finished_at=now, heartbeat_at=now),
        )
        if not mine:
            session.rollback()
            cancelled = session.scalar(select(Scan.cancel_requested).where(Scan.id == job.scan_id))
            raise (ScanCancelled if cancelled else ScanLost)(f"scan {job.scan_id} stopped before its results")
        # Never ingest twice: if results of this scan exist they were committed with a final status,
        # so this branch only guards against hand-edited rows (status set back to running).
        existing = session.scalar(select(func.count()).where(Patch.scan_id == job.scan_id)) or 0
        created = 0 if existing else _ingest(session, settings, job, frame)
        total = existing + created
        counts = category_counts(session, [job.scan_id])[job.scan_id]
        summary = ", ".join(f"{n} {c}" for c, n in sorted(counts.items())) or "no disturbance found"
        updated_rows(
            session,
            update(Scan).where(Scan.id == job.scan_id).values(patch_count=total, message=f"{total} patches: {summary}"),
        )
        session.commit()
    return ScanStatus.succeeded.value


def _ingest(session: Session, settings: Settings, job: _Job, frame: gpd.GeoDataFrame) -> int:
    """Store the detector's patches, each in its district (boundary lookup, else the scan's district)."""
    if frame.empty:
        return 0
    # The detector says "new"/"bare"; the service's change types are DOMAIN's 新增 / 续建（…）, set on ingest.
    frame = frame.drop(columns=[c for c in ("change_type",) if c in frame.columns]).to_crs(WGS84)
    if job.area is not None:
        frame = frame[frame.intersects(job.area)]  # the read window is the area's bbox in another CRS
    if frame.empty:
        return 0
    if job.area_is_district:
        codes = [job.district_code] * len(frame)
    else:
        boundaries = session.scalars(select(District).where(District.geometry.is_not(None))).all()
        codes = []
        for geom in frame.geometry:
            centre = geom.representative_point()
            codes.append(
                next(
                    (d.code for d in boundaries if d.geometry is not None and d.geometry.contains(centre)),
                    job.district_code,
                )
            )
    created = 0
    for code in dict.fromkeys(codes):
        part = frame[[c == code for c in codes]]
        created += len(ingest_detections(session, settings, part, scan_id=job.scan_id, district_code=code))
    return created


def _stopped(factory: sessionmaker[Session], scan_id: int, worker: str, stop: ScanStopped) -> str:
    if isinstance(stop, ScanLost):
        log.warning("%s", stop)
        return "lost"
    if isinstance(stop, ScanInterrupted):
        with factory() as session:
            updated_rows(
                session,
                update(Scan)
                .where(Scan.id == scan_id, Scan.worker == worker, Scan.status == ScanStatus.running.value)
                .values(status=ScanStatus.queued.value, worker=None, progress=0.0,
                        message="interrupted by a service shutdown; it runs again when the service starts")
            )  # fmt: skip
            session.commit()
        return ScanStatus.queued.value
    with factory() as session:
        by = session.scalar(select(Scan.message).where(Scan.id == scan_id)) or ""
    message = by.replace("cancel requested by", "cancelled by") if by.startswith("cancel requested") else "cancelled"
    return _finish(factory, scan_id, worker, ScanStatus.cancelled, message)


def _finish(factory: sessionmaker[Session], scan_id: int, worker: str, status: ScanStatus, message: str) -> str:
    with factory() as session:
        updated_rows(
            session,
            update(Scan)
            .where(Scan.id == scan_id, Scan.worker == worker, Scan.status == ScanStatus.running.value)
            .values(status=status.value, message=message[:2000], finished_at=utcnow()),
        )
        session.commit()
    return status.value
