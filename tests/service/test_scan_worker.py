"""The scan worker across restarts: interrupted scans run again, to completion, without duplicate patches."""

from __future__ import annotations

import datetime as dt
import os

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from service.db import make_engine, make_sessionmaker
from service.main import create_app
from service.models import Patch, Scan
from service.scan_worker import ScanWorker, _dead_here, worker_id
from service.scans import run_scan
from tests.service.routes.test_scans import _slow_detector
from tests.service.scan_files import upload_pair, wait_for

LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def _queue_scan(settings, auth, tmp_path) -> int:
    """Upload the pair and queue a scan in an app without a worker; returns the scan id."""
    with TestClient(create_app(settings, scan_worker=False)) as client:
        before_id, after_id = upload_pair(client, auth("supervisor"), tmp_path / "tiles")
        response = client.post("/api/v1/scans", headers=auth("supervisor"),
                               json={"before_imagery_id": before_id, "after_imagery_id": after_id})  # fmt: skip
        assert response.status_code == 202, response.text
        return int(response.json()["id"])


def _set(settings, scan_id: int, **values) -> None:
    engine = make_engine(settings)
    with make_sessionmaker(engine)() as session:
        session.execute(update(Scan).where(Scan.id == scan_id).values(**values))
        session.commit()
    engine.dispose()


def _patch_counts(settings, scan_id: int) -> tuple[int, int]:
    engine = make_engine(settings)
    with make_sessionmaker(engine)() as session:
        mine = session.scalar(select(func.count()).where(Patch.scan_id == scan_id))
        total = session.scalar(select(func.count()).select_from(Patch))
    engine.dispose()
    return mine or 0, total or 0


def test_shutdown_during_a_scan_queues_it_and_the_next_start_finishes_it(settings, auth, tmp_path, monkeypatch):
    scan_id = _queue_scan(settings, auth, tmp_path)
    monkeypatch.setattr("detector.pipeline.detect_pair", _slow_detector)
    with TestClient(create_app(settings)) as client:
        wait_for(client, auth("viewer"), scan_id, until=lambda b: b["status"] == "running" and b["progress"] > 0)
    # the app stopped mid-scan: nothing stored, back in the queue
    with TestClient(create_app(settings, scan_worker=False)) as client:
        body = client.get(f"/api/v1/scans/{scan_id}", headers=auth("viewer")).json()
    assert body["status"] == "queued" and "shutdown" in body["message"] and body["patch_count"] == 0
    monkeypatch.undo()
    with TestClient(create_app(settings)) as client:
        done = wait_for(client, auth("viewer"), scan_id)
    assert done["status"] == "succeeded" and done["attempts"] == 2 and done["patch_count"] == 2
    assert _patch_counts(settings, scan_id) == (2, 2)


def test_a_scan_left_running_by_a_dead_process_runs_again_without_duplicates(settings, auth, tmp_path):
    scan_id = _queue_scan(settings, auth, tmp_path)
    # A crash mid-detection: the row says running, owned by a worker that no longer beats.
    _set(settings, scan_id, status="running", worker="gone-host:4242:deadbeef", heartbeat_at=LONG_AGO,
         progress=0.6, attempts=1)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        done = wait_for(client, auth("viewer"), scan_id)
    assert (done["status"], done["attempts"], done["patch_count"]) == ("succeeded", 2, 2)
    assert _patch_counts(settings, scan_id) == (2, 2)
    # Even a row forced back to running after its results were stored is not ingested twice.
    _set(settings, scan_id, status="running", worker="gone-host:4242:deadbeef", heartbeat_at=LONG_AGO)
    with TestClient(create_app(settings)) as client:
        done = wait_for(client, auth("viewer"), scan_id, until=lambda b: b["attempts"] == 3 and b["status"] != "queued")
        done = wait_for(client, auth("viewer"), scan_id)
    assert (done["status"], done["patch_count"]) == ("succeeded", 2)
    assert _patch_counts(settings, scan_id) == (2, 2)


def test_scans_that_keep_dying_fail_and_lost_scans_store_nothing(settings, auth, tmp_path):
    scan_id = _queue_scan(settings, auth, tmp_path)
    engine = make_engine(settings)
    factory = make_sessionmaker(engine)
    _set(settings, scan_id, status="running", worker="gone-host:1:x", heartbeat_at=LONG_AGO, attempts=3)
    assert ScanWorker(factory, settings).requeue_orphans() == 1
    with factory() as session:
        scan = session.get(Scan, scan_id)
        assert scan.status == "failed" and "gave up after 3" in scan.message
    # A worker whose scan was taken over by another one must not store its results.
    _set(settings, scan_id, status="running", worker="someone-else", heartbeat_at=dt.datetime.now(dt.UTC))
    assert run_scan(factory, settings, scan_id, worker="me") == "lost"
    assert _patch_counts(settings, scan_id) == (0, 0)
    # A fresh heartbeat from another live host is left alone.
    assert ScanWorker(factory, settings).requeue_orphans() == 0
    engine.dispose()


def test_dead_workers_are_recognised():
    assert _dead_here(None)
    assert not _dead_here("another-host:1:abc")  # cannot tell: wait for its heartbeat to go stale
    host = worker_id().split(":")[0]
    assert _dead_here(f"{host}:{2**22 + 12345}:abc")  # above pid_max on Linux: no such process
    assert _dead_here(f"{host}:{os.getpid()}:not-running-here")
