"""``kill -9`` a real ``soilwatch scan`` mid-way, run it again: the same database as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.core.config import Settings
from service.db import make_engine, make_sessionmaker
from service.models import NightlyJob, NightlyRun, ScanUnit
from tests.service.nightly import inbox as world
from tests.service.nightly.helpers import fresh_sqlite, options, patch_rows, run

pytestmark = pytest.mark.slow
SOILWATCH = str(Path(sys.executable).with_name("soilwatch"))
UNIT_PX = 128  # 20 units: enough to be killed in the middle


def _scan(settings: Settings, inbox: Path, work: Path) -> subprocess.Popen:
    env = {**os.environ, "SOILWATCH_DATABASE_URL": settings.resolved_database_url,
           "SOILWATCH_DATA_DIR": str(settings.data_dir), "SOILWATCH_SCAN_LOCK_STALE_S": "600"}  # fmt: skip
    return subprocess.Popen(
        [SOILWATCH, "scan", "--inbox", str(inbox), "--work-dir", str(work), "--unit-px", str(UNIT_PX),
         "--workers", "2", "--no-progress"],  # fmt: skip
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def _units_done(factory) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(ScanUnit)) or 0


def test_kill_9_mid_scan_then_rerun_gives_the_same_database(sqlite_template, tmp_path: Path) -> None:
    # SQLite only (the in-process resume test runs on both engines): two real CLI runs are the slow part
    settings = fresh_sqlite(sqlite_template, tmp_path, "scan")
    inbox = world.write_inbox(tmp_path / "inbox")
    engine = make_engine(settings)
    factory = make_sessionmaker(engine)
    proc = _scan(settings, inbox, tmp_path / "work")
    deadline = time.monotonic() + 60
    while _units_done(factory) < 5:
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the scan ended before it could be killed: {proc.communicate()}")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the scan and its worker processes, as a crash would
    proc.wait(timeout=10)
    killed_at = _units_done(factory)
    with factory() as session:
        assert session.scalar(select(NightlyRun.status)) == "running"
        assert session.scalar(select(NightlyJob.status).where(NightlyJob.before_date.is_not(None))) == "planned"
    assert 5 <= killed_at < 20

    again = _scan(settings, inbox, tmp_path / "work")  # the lock's holder is dead: taken over at once
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert "(resumed)" in out
    unit_lines = [line for line in err.splitlines() if '"event": "unit"' in line]
    assert len(unit_lines) == 20 - killed_at  # only the missing units ran again
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(ScanUnit)) == 20
        assert session.scalar(select(func.count()).select_from(NightlyRun)) == 1
        assert session.scalar(select(NightlyRun.status)) == "succeeded"
    interrupted = patch_rows(settings)
    engine.dispose()

    # the same inbox, scanned without interruption (in this process) into a fresh copy of the seeded database
    ref = fresh_sqlite(sqlite_template, tmp_path, "reference")
    run(ref, options(inbox, tmp_path / "ref-work", unit_px=UNIT_PX))
    assert len(interrupted) == len(world.SQUARES)
    assert interrupted == patch_rows(ref)


def test_a_unit_that_kills_its_worker_process_fails_alone(sqlite_template, tmp_path: Path) -> None:
    from service.nightly import LocalExecutor
    from tests.service.nightly.faults import DEADLY, die_on_one_unit

    settings = fresh_sqlite(sqlite_template, tmp_path, "oom")
    inbox = world.write_inbox(tmp_path / "inbox", broken=False)
    executor = LocalExecutor(2, task=die_on_one_unit)
    try:
        result = run(settings, options(inbox, tmp_path / "work", max_attempts=2), executor)
    finally:
        executor.close()
    failed = result.summary["failed_units"]
    assert [(u["col"], u["row"], u["attempts"]) for u in failed] == [(*DEADLY, 2)]
    assert "worker process died" in failed[0]["error"]
    assert result.summary["jobs"][-1]["units"] == 20 and result.summary["jobs"][-1]["units_failed"] == 1
