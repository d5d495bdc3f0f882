"""The nightly lock: one row in ``nightly_locks`` while a scan runs, kept fresh by a heartbeat thread.

A lock is stale — and taken over — when its heartbeat is older than ``stale_s`` or when its holder
names a process on this host that no longer exists (so a re-run right after ``kill -9`` goes on at
once). Take-over is a compare-and-set on ``(holder, heartbeat_at)``: of two scans racing for a
stale lock only one wins. A holder whose lock was taken over learns it at its next heartbeat and
must stop writing (:class:`LockLostError`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from types import TracebackType

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.models import NightlyLock, utcnow
from service.nightly.errors import LockLostError, ScanLockedError

__all__ = ["ScanLock", "holder_id", "LOCK_NAME"]

log = logging.getLogger(__name__)
LOCK_NAME = "nightly-scan"


def holder_id() -> str:
    """``host:pid:random``."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _gone(holder: str) -> bool:
    """True when ``holder`` is a process of this host that no longer runs."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname()[:60] or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # SQLite gives naive UTC back


class ScanLock:
    """``with ScanLock(factory, stale_s=300):`` — raises :class:`ScanLockedError` when a live scan holds it."""

    def __init__(self, factory: sessionmaker[Session], *, stale_s: float = 300.0, heartbeat_s: float = 15.0,
                 name: str = LOCK_NAME) -> None:  # fmt: skip
        self.factory, self.stale_s, self.heartbeat_s, self.name = factory, stale_s, heartbeat_s, name
        self.holder = holder_id()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        with self.factory() as session:
            now = utcnow()
            session.add(NightlyLock(name=self.name, holder=self.holder, acquired_at=now, heartbeat_at=now))
            try:
                session.commit()
                return
            except IntegrityError:
                session.rollback()
            row = session.scalar(select(NightlyLock).where(NightlyLock.name == self.name))
            if row is None:  # released in between: try once more from the start
                return self.acquire()
            age = (now - _aware(row.heartbeat_at)).total_seconds()
            if age < self.stale_s and not _gone(row.holder):
                raise ScanLockedError(
                    f"another nightly scan ({row.holder!r}) is running, last seen {age:.0f} s ago; wait for it "
                    f"(its lock is taken over once it has had no heartbeat for {self.stale_s:.0f} s)"
                )
            took = session.execute(
                update(NightlyLock)
                .where(NightlyLock.name == self.name, NightlyLock.holder == row.holder,
                       NightlyLock.heartbeat_at == row.heartbeat_at)  # fmt: skip
                .values(holder=self.holder, acquired_at=now, heartbeat_at=now)
            ).rowcount  # type: ignore[attr-defined]
            session.commit()
            if not took:
                raise ScanLockedError("another nightly scan took the stale lock at the same moment; try again later")
            log.warning("took over the stale nightly lock of %s (%.0f s without a heartbeat)", row.holder, age)

    def beat(self) -> None:
        """Refresh the heartbeat; sets :attr:`lost` when someone else holds the lock now."""
        with self.factory() as session:
            mine = session.execute(
                update(NightlyLock)
                .where(NightlyLock.name == self.name, NightlyLock.holder == self.holder)
                .values(heartbeat_at=utcnow())
            ).rowcount  # type: ignore[attr-defined]
            session.commit()
        if not mine:
            self.lost.set()

    def check(self) -> None:
        if self.lost.is_set():
            raise LockLostError(f"the nightly lock was taken over by another scan; {self.holder!r} stops")

    def _run(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.beat()
            except Exception as exc:  # busy database (SQLite during a long write) or a hiccup: next beat
                log.warning("nightly lock heartbeat failed (%s); trying again in %.0f s", type(exc).__name__,
                            self.heartbeat_s)  # fmt: skip

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self.factory() as session:
            session.execute(delete(NightlyLock).where(NightlyLock.name == self.name, NightlyLock.holder == self.holder))
            session.commit()

    def __enter__(self) -> ScanLock:
        self.acquire()
        self._thread = threading.Thread(target=self._run, name="soilwatch-scan-lock", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
