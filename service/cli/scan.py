"""``soilwatch scan``: the nightly batch scan (see :mod:`service.nightly`)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import typer

__all__ = ["scan"]


class _Bar:
    """Progress on stderr: units done, km² done, rate and ETA (a rich bar on a terminal, else a line a minute)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None

    def start(self, label: str, total_units: int, total_km2: float, done_units: int, done_km2: float) -> None:
        self.label, self.total, self.done = label, total_units, done_units
        self.total_km2, self.km2 = total_km2, done_km2
        self.t0, self.done0, self.last = time.monotonic(), done_units, 0.0
        if not self.enabled:
            return
        if sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(),
                TextColumn("{task.completed}/{task.total} units · {task.fields[km2]:.1f}/"
                           "{task.fields[total_km2]:.1f} km² · {task.fields[rate]}"),
                TimeRemainingColumn(), transient=False,
            )  # fmt: skip
            self._progress.start()
            self._task = self._progress.add_task(label, total=total_units, completed=done_units, km2=done_km2,
                                                 total_km2=total_km2, rate="–")  # fmt: skip

    def advance(self, km2: float) -> None:
        self.done += 1
        self.km2 += km2
        elapsed = time.monotonic() - self.t0
        rate_u = (self.done - self.done0) / elapsed if elapsed > 0 else 0.0
        rate = f"{self.km2 / max(elapsed, 1e-9) * 3600:.0f} km²/h" if rate_u else "–"
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, km2=self.km2, rate=rate)
        elif time.monotonic() - self.last > 60 or self.done == self.total:
            self.last = time.monotonic()
            eta = (self.total - self.done) / rate_u if rate_u else float("nan")
            typer.echo(f"{self.label}: {self.done}/{self.total} units, {self.km2:.1f}/{self.total_km2:.1f} km², "
                       f"{rate}, ETA {eta:.0f} s", err=True)  # fmt: skip

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def scan(
    inbox: Path | None = typer.Option(None, "--inbox", help="Folder with new scenes (default: SOILWATCH_SCAN_INBOX; "
                                      "without one, only imagery already catalogued, e.g. uploads, is scanned)."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler, e.g. tcp://host:8786 "
                                         "(default: local processes)."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Local processes (default: all cores)."),
    unit_px: int | None = typer.Option(None, "--unit-px", min=64, help="Work-unit size in pixels (default 2048)."),
    model: str | None = typer.Option(None, "--model", help="Registered model name or weights file (default: auto, "
                                     "the learned model for two dates at 5 m or finer, else the baseline)."),
    self_train: bool | None = typer.Option(None, "--self-train/--no-self-train", help="Adapt the learned model to "
                                           "each pair before detecting it (default: off; more than twice the time)."),
    work_dir: Path | None = typer.Option(
        None, "--work-dir", help="Mosaics (VRT) go here; shared storage on a cluster."
    ),
    report_dir: Path | None = typer.Option(None, "--report-dir", help="Reports go to REPORT_DIR/run-<id>/."),
    webhook: str | None = typer.Option(None, "--webhook", help="POST the run's summary (JSON) to this URL."),
    date_pattern: str | None = typer.Option(None, "--date-pattern", help="Regex with groups year, month, day for "
                                            "dates in file names, e.g. "
                                            "'_(?P<year>\\d{4})(?P<month>\\d\\d)(?P<day>\\d\\d)_'."),
    max_attempts: int | None = typer.Option(None, "--max-attempts", min=1, help="Tries per unit (default 3)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
    upgrade: bool = typer.Option(True, "--upgrade/--no-upgrade", help="Run database migrations first."),
) -> None:
    """The nightly scan: catalogue new scenes, pair them with earlier imagery, detect, merge, match, report.

    Resumable: run it again after a crash or kill and it goes on where it stopped. Two scans never run
    at once. Uses SOILWATCH_DATABASE_URL / SOILWATCH_DATA_DIR like the service.

    Example: soilwatch scan --inbox demo-output --report-dir reports
    """
    from service.core.config import get_settings
    from service.db import make_engine, make_sessionmaker, upgrade_database
    from service.nightly import NightlyOptions, make_executor, run_nightly

    given: dict[str, Any] = {
             "inbox": inbox, "scheduler": scheduler, "workers": workers, "unit_px": unit_px, "model": model,
             "work_dir": work_dir, "report_dir": report_dir, "webhook_url": webhook, "date_pattern": date_pattern,
             "max_attempts": max_attempts, "self_train": self_train}  # fmt: skip
    options = NightlyOptions(**{k: v for k, v in given.items() if v is not None})
    unit_logger = logging.getLogger("service.nightly.units")
    if logging.getLogger().level > logging.INFO and unit_logger.level == logging.NOTSET and logging.getLogger().level \
            < logging.ERROR:  # fmt: skip
        unit_logger.setLevel(logging.INFO)  # one structured line per unit, unless -q
    settings = get_settings()
    if upgrade:  # like `soilwatch serve`: a fresh data folder needs no separate `soilwatch db upgrade`
        upgrade_database(settings.resolved_database_url)
    engine = make_engine(settings)
    executor = make_executor(scheduler=options.scheduler, workers=options.workers)
    try:
        result = run_nightly(make_sessionmaker(engine), settings, options, executor, progress=_Bar(progress))
    finally:
        executor.close()
        engine.dispose()
    s = result.summary
    typer.echo(f"run {result.run_id}{' (resumed)' if result.resumed else ''}: {s['patches']} patches, "
               f"{s['suspected']} suspected, {len(s['failed_units'])} failed units, "
               f"{len(s['unreadable_files'])} unreadable files; report in {result.report_dir}")  # fmt: skip
    if s.get("webhook_error"):
        typer.echo(f"webhook failed: {s['webhook_error']}", err=True)
