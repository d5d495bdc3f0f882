"""The background scan worker: a thread started with the app that runs queued scans one at a time.

The queue is the ``scans`` table, so it survives restarts. A worker claims a scan with a conditional
``UPDATE … WHERE status = 'queued'`` (only one of several processes can win) and beats a heartbeat
while it runs it. A ``running`` scan is handed back to the queue when its worker is known to be gone:

* its heartbeat is older than ``stale_after_s`` (the process died or hangs), or
* its worker id names a process on this machine that no longer exists (a restart after a crash is
  picked up at once instead of after ``stale_after_s``).

After ``max_attempts`` interrupted runs a scan is marked failed, so a scan that kills its worker
(e.g. out of memory) cannot do so for ever. Shutdown interrupts the running scan cooperatively and
queues it again.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.core.config import Settings
from service.models import Scan, utcnow
from service.scans import run_scan, updated_rows
from service.vocab import ScanStatus

__all__ = ["ScanWorker", "worker_id"]

log = logging.getLogger(__name__)
#: Ids of the workers running in this process (several apps may live in one process, e.g. in tests).
_LIVE: set[str] = set()


def worker_id() -> str:
    """``host:pid:random`` — unique per worker, and tells a later process on this host whether it is alive."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _dead_here(worker: str | None) -> bool:
    """True when ``worker`` names a process of this host that is gone (or this very process, restarted)."""
    if not worker:
        return True
    host, _, rest = worker.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname()[:60] or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return worker not in _LIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


class ScanWorker:
    """Runs queued scans in a daemon thread; :meth:`start` with the app, :meth:`stop` at shutdown."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        *,
        poll_s: float = 2.0,
        heartbeat_s: float = 5.0,
        stale_after_s: float = 60.0,
        max_attempts: int = 3,
        report_every_s: float = 0.5,
    ) -> None:
        self.factory, self.settings = factory, settings
        self.poll_s, self.heartbeat_s, self.stale_after_s = poll_s, heartbeat_s, stale_after_s
        self.max_attempts, self.report_every_s = max_attempts, report_every_s
        self.id = worker_id()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: int | None = None

    # ----------------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._thread is not None:
            return
        _LIVE.add(self.id)
        self._thread = threading.Thread(target=self._loop, name="soilwatch-scan-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the running scan to stop (it goes back to the queue) and wait for the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("scan worker did not stop within %.0f s; its scan is re-run at the next start", timeout)
            self._thread = None
        _LIVE.discard(self.id)

    def wake(self) -> None:
        """Look at the queue now (called when a scan is created)."""
        self._wake.set()

    @property
    def current_scan(self) -> int | None:
        return self._current

    # ----------------------------------------------------------------------------------------- the loop
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.requeue_orphans()
                scan_id = self.claim_next()
                if scan_id is not None:
                    self._run(scan_id)
                    continue  # more may be waiting
            except (OperationalError, InterfaceError) as exc:  # the database restarts or is unreachable
                log.warning("scan worker: database error, retry in %.0f s: %s", self.poll_s, str(exc).splitlines()[0])
            except Exception:  # a database hiccup must not kill the worker; try again after the pause
                log.exception("scan worker loop error")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def run_pending(self) -> int:
        """Run every queued scan in the calling thread until the queue is empty; returns how many ran."""
        ran = 0
        self.requeue_orphans()
        while not self._stop.is_set() and (scan_id := self.claim_next()) is not None:
            self._run(scan_id)
            ran += 1
        return ran

    def _run(self, scan_id: int) -> None:
        self._current = scan_id
        beat = threading.Event()
        beater = threading.Thread(target=self._beat, args=(scan_id, beat), name=f"scan-{scan_id}-heartbeat",
                                  daemon=True)  # fmt: skip
        beater.start()
        try:
            status = run_scan(self.factory, self.settings, scan_id, worker=self.id, should_stop=self._stop.is_set,
                              report_every_s=self.report_every_s)  # fmt: skip
            log.info("scan %s: %s", scan_id, status)
        finally:
            beat.set()
            beater.join()
            self._current = None

    def _beat(self, scan_id: int, done: threading.Event) -> None:
        # Liveness is the process's, not the detector's: a long model load or a big ingest between
        # progress reports must not make the scan look abandoned.
        while not done.wait(self.heartbeat_s):
            try:
                with self.factory() as session:
                    updated_rows(
                        session,
                        update(Scan).where(Scan.id == scan_id, Scan.worker == self.id).values(heartbeat_at=utcnow()),
                    )
                    session.commit()
            except Exception:
                log.warning("heartbeat of scan %s failed", scan_id, exc_info=True)

    # ----------------------------------------------------------------------------------------- queue ops
    def claim_next(self) -> int | None:
        """Take the oldest queued scan (conditional update, safe against other workers); its id or None."""
        with self.factory() as session:
            candidates = session.scalars(
                select(Scan.id)
                .where(Scan.status == ScanStatus.queued.value, Scan.cancel_requested.is_(False))
                .order_by(Scan.id)
                .limit(5)
            ).all()
            for scan_id in candidates:
                now = utcnow()
                won = updated_rows(
                    session,
                    update(Scan)
                    .where(Scan.id == scan_id, Scan.status == ScanStatus.queued.value)
                    .values(status=ScanStatus.running.value, worker=self.id, heartbeat_at=now, progress=0.0,
                            started_at=now, finished_at=None, attempts=Scan.attempts + 1)
                )  # fmt: skip
                session.commit()
                if won:
                    return scan_id
        return None

    def requeue_orphans(self) -> int:
        """Queue again the running scans whose worker is gone, or that this worker left running when a run
        ended on a database error; fail those interrupted too often."""
        stale_before = utcnow() - dt.timedelta(seconds=self.stale_after_s)
        requeued = 0
        with self.factory() as session:
            rows = session.execute(
                select(Scan.id, Scan.worker, Scan.heartbeat_at, Scan.attempts).where(
                    Scan.status == ScanStatus.running.value
                )
            ).all()
            for scan_id, worker, heartbeat, attempts in rows:
                beat = heartbeat if heartbeat is None or heartbeat.tzinfo else heartbeat.replace(tzinfo=dt.UTC)
                if worker == self.id:  # ours but not running: its run ended on a database error (restart)
                    if scan_id == self._current:
                        continue
                elif not (beat is None or beat < stale_before or _dead_here(worker)):
                    continue
                if attempts >= self.max_attempts:
                    values = {"status": ScanStatus.failed.value, "finished_at": utcnow(),
                              "message": f"gave up after {attempts} interrupted runs; see the service log"}  # fmt: skip
                else:
                    message = f"run {attempts} was interrupted (worker {worker} stopped); queued again"
                    values = {"status": ScanStatus.queued.value, "worker": None, "progress": 0.0, "message": message}
                requeued += updated_rows(
                    session,
                    update(Scan)
                    .where(Scan.id == scan_id, Scan.status == ScanStatus.running.value, _same(Scan.worker, worker))
                    .values(**values),
                )
            session.commit()
        if requeued:
            log.info("scan worker: %d interrupted scan(s) handled", requeued)
            self._wake.set()
        return requeued


def _same(column: Any, value: str | None) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value  # type: ignore[no-any-return]
