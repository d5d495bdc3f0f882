"""The nightly scan, end to end: lock → catalogue the inbox → pair → plan → units → merge → report.

Resumable: every step leaves its result in the database before the next starts — catalogued scenes,
planned jobs (with the pickled plan, so the units are cut the same way again), each finished unit
(``scan_units``), and finally each job's patches, written with the job's status in one transaction.
A run killed anywhere is picked up by the next start (its ``nightly_runs`` row is still ``running``):
catalogued scenes are skipped, planned jobs reused, finished units not run again, and a job whose
patches were committed is never merged twice.
"""

from __future__ import annotations

import json
import logging
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from affine import Affine
from pyproj import CRS
from shapely.geometry import box
from shapely.ops import unary_union
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.core.config import Settings
from service.geometry import WGS84, reproject
from service.models import Imagery, NightlyJob, NightlyRun, Scan, ScanUnit, utcnow
from service.nightly.adapt import adapt_to_pair
from service.nightly.config import NightlyOptions
from service.nightly.discover import Discovery, discover_inbox
from service.nightly.executors import Outcome, UnitExecutor
from service.nightly.lock import ScanLock
from service.nightly.mosaic import is_tall, write_mosaic
from service.nightly.pairing import PairSpec, new_scene_ids, pair_scenes
from service.nightly.units import Cell, cell_of, decode_fragments
from service.patches import ingest_detections

__all__ = ["RunResult", "ProgressSink", "run_nightly", "job_cells"]

log = logging.getLogger(__name__)
unit_log = logging.getLogger("service.nightly.units")


class ProgressSink(Protocol):
    def start(self, label: str, total_units: int, total_km2: float, done_units: int, done_km2: float) -> None: ...

    def advance(self, km2: float) -> None: ...

    def stop(self) -> None: ...


@dataclass
class RunResult:
    run_id: int
    resumed: bool
    discovery: Discovery | None
    jobs: list[int] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    report_dir: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)


class _Timer:
    def __init__(self, timings: dict[str, float], name: str) -> None:
        self.timings, self.name = timings, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.name] = self.timings.get(self.name, 0.0) + time.perf_counter() - self.t0


def run_nightly(
    factory: sessionmaker[Session],
    settings: Settings,
    options: NightlyOptions,
    executor: UnitExecutor,
    *,
    progress: ProgressSink | None = None,
    on_unit: Callable[[Outcome], None] | None = None,
) -> RunResult:
    """One nightly scan (or the rest of an interrupted one); returns what it did."""
    from service.nightly.report import write_report

    work_dir = options.work_dir or settings.data_dir / "nightly"
    with ScanLock(factory, stale_s=options.lock_stale_s, heartbeat_s=options.heartbeat_s) as lock:
        run, resumed = _open_run(factory, lock.holder, options)
        result = RunResult(run_id=run.id, resumed=resumed, discovery=None)
        t = result.timings
        if options.inbox is not None:
            with _Timer(t, "catalogue_s"):
                result.discovery = discover_inbox(factory, options.inbox, extensions=options.extensions,
                                                  date_pattern=options.date_pattern)  # fmt: skip
        with _Timer(t, "plan_s"):
            _plan_jobs(factory, run.id, options, work_dir, t)
        with factory() as session:
            jobs = session.scalars(
                select(NightlyJob).where(NightlyJob.run_id == run.id).order_by(NightlyJob.after_date, NightlyJob.id)
            ).all()
        for job in jobs:
            result.jobs.append(job.id)
            if job.status != "planned":
                continue
            lock.check()
            plan = pickle.loads(job.plan or b"")
            with _Timer(t, "detect_s"):
                _detect_job(factory, job, plan, executor, options, lock, progress, on_unit)
            _merge_job(factory, settings, job, plan, lock, t)
        with _Timer(t, "report_s"):
            report_dir = (options.report_dir or work_dir) / f"run-{run.id}"
            result.summary = write_report(factory, settings, run.id, report_dir, result, top=options.report_top)
            result.report_dir = report_dir
        with factory() as session:
            session.execute(update(NightlyRun).where(NightlyRun.id == run.id).values(
                status="succeeded", finished_at=utcnow(), summary=json.loads(json.dumps(result.summary, default=str)),
                report_dir=str(report_dir)))  # fmt: skip
            session.commit()
    if options.webhook_url:
        from service.nightly.report import post_webhook

        result.summary["webhook_error"] = post_webhook(options.webhook_url, result.summary)
    return result


def _open_run(factory: sessionmaker[Session], holder: str, options: NightlyOptions) -> tuple[NightlyRun, bool]:
    with factory() as session:
        run = session.scalars(select(NightlyRun).where(NightlyRun.status == "running").order_by(NightlyRun.id)).first()
        resumed = run is not None
        if run is None:
            run = NightlyRun(status="running", options=json.loads(options.model_dump_json()), summary={})
            session.add(run)
        run.holder = holder
        session.commit()
        if resumed:
            log.warning("resuming nightly run %s, interrupted before it finished", run.id)
        return run, resumed


def _paths(session: Session, ids: tuple[int, ...], work_dir: Path, name: str, date: str) -> str:
    rows = [session.get(Imagery, i) for i in ids]
    paths = [r.path for r in rows if r is not None]
    if len(paths) == 1 and not is_tall(paths[0]):
        return paths[0]
    return str(write_mosaic(paths, work_dir / "mosaics" / f"{name}.vrt", date=date))


def _plan_jobs(factory: sessionmaker[Session], run_id: int, options: NightlyOptions, work_dir: Path,
               timings: dict[str, float]) -> None:  # fmt: skip
    """Create the jobs of the scenes not yet scanned (each committed on its own, with its plan); with
    ``options.self_train`` each pair's model is first adapted to it (:mod:`service.nightly.adapt`)."""
    from detector.auto import resolve_options
    from detector.errors import DetectorError
    from detector.pipeline import DetectOptions, plan_detection, prepare_model
    from service.nightly.errors import NightlyError

    with factory() as session:
        specs = pair_scenes(session, new_scene_ids(session), min_cover=options.min_cover)
    models: dict[str, Any] = {}  # by resolved name: "auto" may choose differently for each pair
    for spec in specs:
        key = spec.key(options.model, options.unit_px)
        with factory() as session:
            if session.scalar(select(NightlyJob.id).where(NightlyJob.key == key)) is not None:
                continue
            job = NightlyJob(run_id=run_id, key=key, after_date=spec.after_date, before_date=spec.before_date,
                             after_ids=list(spec.after_ids), before_ids=list(spec.before_ids), after_path="",
                             units_total=0, units_failed=0, area_km2=0.0, patch_count=0)  # fmt: skip
            if not spec.before_ids:
                job.status, job.message = "baseline", "no earlier imagery covers these scenes: nothing to compare yet"
                job.after_path = _paths_or_first(session, spec.after_ids)
                session.add(job)
                session.commit()
                continue
            try:
                job.after_path = _paths(session, spec.after_ids, work_dir, f"{key[:16]}-after", str(spec.after_date))
                job.before_path = _paths(session, spec.before_ids, work_dir, f"{key[:16]}-before",
                                         str(spec.before_date))  # fmt: skip
                opts = resolve_options(DetectOptions(model=options.model, before_date=str(spec.before_date),
                                                     after_date=str(spec.after_date)), job.before_path)  # fmt: skip
                if options.self_train:
                    with _Timer(timings, "self_train_s"):
                        adapted = adapt_to_pair(opts.model, job.before_path, job.after_path,
                                                work_dir / "adapted" / f"{key[:16]}.pt", steps=options.self_train_steps)
                    opts = replace(opts, model=adapted.model)
                    job.message = adapted.note
                if opts.model not in models:
                    models[opts.model] = prepare_model(opts)
                plan = plan_detection(job.before_path, job.after_path, options=opts, model=models[opts.model])
                cells = job_cells(session, plan, spec, options.unit_px)
                job.plan = pickle.dumps(plan)
                job.units_total = len(cells)
                job.area_km2 = sum(_km2(plan, c) for c in cells)
            except (DetectorError, NightlyError) as exc:
                job.status, job.message = "failed", str(exc)[:2000]
                log.error("cannot scan imagery %s against %s: %s", spec.after_ids, spec.before_ids, exc)
            session.add(job)
            session.commit()


def _paths_or_first(session: Session, ids: tuple[int, ...]) -> str:
    row = session.get(Imagery, ids[0])
    return row.path if row is not None else ""


def _km2(plan: Any, cell: Cell) -> float:
    return float(cell[2] * cell[3] * plan.resolution_m**2 / 1e6)


def job_cells(session: Session, plan: Any, spec: PairSpec | NightlyJob, unit_px: int) -> list[Cell]:
    """The plan's units that touch both dates' footprints (a mosaic's bbox holds empty corners), in order."""
    def union(ids: Any) -> Any:
        return unary_union([r.footprint for i in ids if (r := session.get(Imagery, i)) is not None and r.footprint])

    both = union(spec.after_ids).intersection(union(spec.before_ids))
    crs = CRS.from_user_input(plan.grid.crs.to_wkt())
    cover = reproject(both, WGS84, crs).buffer(64 * plan.resolution_m) if not both.is_empty else both
    tr: Affine = plan.grid.transform
    out = []
    for w in plan.units(unit_px=unit_px):
        c = cell_of(w)
        x0, y0 = tr @ (c[0], c[1])
        x1, y1 = tr @ (c[0] + c[2], c[1] + c[3])
        if cover.intersects(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))):
            out.append(c)
    return out


def _detect_job(factory: sessionmaker[Session], job: NightlyJob, plan: Any, executor: UnitExecutor,
                options: NightlyOptions, lock: ScanLock, progress: ProgressSink | None,
                on_unit: Callable[[Outcome], None] | None) -> None:  # fmt: skip
    with factory() as session:
        spec = session.get(NightlyJob, job.id)
        cells = job_cells(session, plan, spec, options.unit_px)  # type: ignore[arg-type]
        finished = {(u.col_off, u.row_off) for u in session.scalars(select(ScanUnit).where(ScanUnit.job_id == job.id))}
    todo = [c for c in cells if (c[0], c[1]) not in finished]
    done_cells = [c for c in cells if (c[0], c[1]) in finished]
    if progress is not None:
        label = f"job {job.id} {job.before_date}→{job.after_date}"
        progress.start(label, len(cells), sum(_km2(plan, c) for c in cells), len(done_cells),
                       sum(_km2(plan, c) for c in done_cells))  # fmt: skip
    if todo and len(done_cells):
        log.warning("job %s: %d of %d units already done, running the other %d", job.id, len(done_cells), len(cells),
                    len(todo))  # fmt: skip

    def store(outcome: Outcome) -> None:
        lock.check()
        res = outcome.result
        col, row, width, height = outcome.cell
        unit = ScanUnit(job_id=job.id, col_off=col, row_off=row, width=width, height=height,
                        status="done" if res else "failed", attempts=outcome.attempts,
                        n_fragments=res.n_fragments if res else 0, fragments=res.fragments if res else None,
                        seconds=res.seconds if res else 0.0, worker=res.worker if res else None,
                        error=outcome.error)  # fmt: skip
        with factory() as session:
            session.add(unit)
            session.commit()
        unit_log.info(json.dumps({"event": "unit", "job": job.id, "col": col, "row": row, "width": width,
                                  "height": height, "status": unit.status, "attempts": outcome.attempts,
                                  "fragments": unit.n_fragments, "seconds": round(unit.seconds, 3),
                                  "km2": round(_km2(plan, outcome.cell), 3), "worker": unit.worker,
                                  "error": outcome.error}, ensure_ascii=False))  # fmt: skip
        if progress is not None:
            progress.advance(_km2(plan, outcome.cell))
        if on_unit is not None:
            on_unit(outcome)

    try:
        if todo:
            executor.run(plan, todo, store, max_attempts=options.max_attempts)
    finally:
        if progress is not None:
            progress.stop()


def _merge_job(factory: sessionmaker[Session], settings: Settings, job: NightlyJob, plan: Any, lock: ScanLock,
               timings: dict[str, float]) -> None:  # fmt: skip
    """Join the job's fragments into patches and write them, with the job's status, in one transaction.

    ``merge_s``: reading the units back and joining (detector); ``write_s``: storing, matching and linking.
    """
    from detector.pipeline import finish_patches

    t0 = time.perf_counter()
    with factory() as session:
        units = session.scalars(
            select(ScanUnit).where(ScanUnit.job_id == job.id).order_by(ScanUnit.row_off, ScanUnit.col_off)
        ).all()
        fragments = [f for u in units if u.status == "done" for f in decode_fragments(u.fragments)]
        failed = sum(1 for u in units if u.status == "failed")
        frame = finish_patches(plan, fragments)
        frame = frame.drop(columns=[c for c in ("change_type",) if c in frame.columns])
        t1 = time.perf_counter()
        timings["merge_s"] = timings.get("merge_s", 0.0) + t1 - t0
        lock.check()
        now = utcnow()
        mine = session.execute(
            update(NightlyJob).where(NightlyJob.id == job.id, NightlyJob.status == "planned")
            .values(status="done", finished_at=now, units_failed=failed)
        ).rowcount  # type: ignore[attr-defined]
        if not mine:  # merged already (another process resumed it): never write twice
            session.rollback()
            return
        scan = Scan(status="succeeded", before_imagery_id=job.before_ids[0], after_imagery_id=job.after_ids[0],
                    district_code=None, progress=1.0, model=plan.model_label, patch_count=0, attempts=1,
                    cancel_requested=False, worker=lock.holder, started_at=job.created_at, finished_at=now,
                    heartbeat_at=now, options={"mode": "nightly", "nightly_run": job.run_id, "nightly_job": job.id,
                                               "after_ids": job.after_ids, "before_ids": job.before_ids,
                                               "before_date": str(job.before_date), "after_date": str(job.after_date)})
        session.add(scan)
        session.flush()
        created = ingest_detections(session, settings, frame, scan_id=scan.id) if len(frame) else []
        scan.patch_count = len(created)
        districts = {p.district_code for p in created}
        # one district: its users see the scan; several (or none): a city-level scan, seen by the city
        scan.district_code = districts.pop() if len(districts) == 1 else None
        scan.message = f"nightly run {job.run_id}: {len(created)} patches" + (
            f", {failed} units failed" if failed else "")
        notes = [job.message, f"{len(created)} patches; {failed} of {len(units)} units failed" if failed else None]
        session.execute(update(NightlyJob).where(NightlyJob.id == job.id).values(
            scan_id=scan.id, patch_count=len(created), message="; ".join(n for n in notes if n) or None))
        session.commit()
    timings["write_s"] = timings.get("write_s", 0.0) + time.perf_counter() - t1
    log.info("job %s: %d patches written (scan %s)", job.id, len(created), scan.id)
