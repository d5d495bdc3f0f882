"""Faults on a real ``soilwatch serve`` process (issue 8): ``kill -9`` mid-upload, mid-import,
mid-review and mid-scan; PostgreSQL restarted under load; a full disk.

After each: what was committed is all there, nothing half-written is visible, and the service comes
back by itself (a restart of the process, or no action at all for the database restart).

Related tests elsewhere, not repeated here: the scan worker's requeue logic in-process
(``tests/service/test_scan_worker.py``: shutdown mid-scan, a row left running by a dead process, give
up after 3 attempts), and ``kill -9`` of the nightly batch scan (``tests/service/nightly/test_nightly_kill.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.db import make_engine, make_sessionmaker
from service.main import create_app
from service.models import AuditEvent, Imagery, ImportReport, Patch, Project, Review, Scan
from tests.service.conftest import _seed
from tests.service.faults_support import (
    Server,
    full_disk_under,
    multipart_body,
    send_raw,
    start_pg_cluster,
    tmpfs,
    write_transaction_open,
)
from tests.service.scan_files import write_pair

pytestmark = pytest.mark.slow
PROBLEM = "application/problem+json"
#: Bare-soil sites on the 1,024 px scan tiles: enough work that the scan can be killed while it runs.
SITES = [(40, 40, 40, 40), (150, 140, 30, 50)] + [(r, c, 40, 40) for r in (300, 560, 820) for c in (300, 560, 820)]


def _server(url: str, tmp_path: Path) -> Server:
    return Server(url, tmp_path / "data", tmp_path / "server.log").start()


def _h(tokens: dict[str, str], user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[user]}"}


def _count(url: str, model, *where) -> int:  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        n = session.scalar(select(func.count()).select_from(model).where(*where)) or 0
    engine.dispose()
    return n


def _leftovers(data_dir: Path) -> list[str]:
    """Everything under data_dir/tmp, and any partial file next to the stored imagery."""
    found = [str(p) for p in (data_dir / "tmp").glob("*")] if (data_dir / "tmp").exists() else []
    return found + [str(p) for p in (data_dir / "imagery").rglob("*") if p.is_file() and not p.name.endswith(".tif")]


def _upload(base: str, headers: dict[str, str], path: Path, day: str) -> httpx.Response:
    return httpx.post(f"{base}/imagery", headers=headers, files={"file": (path.name, path.read_bytes())},
                      data={"acquired_on": day, "sensor": "test"}, timeout=120)  # fmt: skip


# ------------------------------------------------------------------------------------------- kill -9
def test_kill_9_mid_upload_leaves_no_partial_file_and_the_restart_cleans_up(database, tmp_path):
    before, after = write_pair(tmp_path / "tiles")
    server = _server(database.url, tmp_path)
    try:
        headers = _h(database.tokens, "supervisor")
        assert _upload(server.base, headers, before, "2023-06-01").status_code == 201  # committed before the faults

        # 1. killed while the body streams in (slowly): the request never reached the route
        body, ctype = multipart_body("file", after.name, after.read_bytes() * 40, {"acquired_on": "2024-06-01"})
        sock = send_raw(server.port, "/api/v1/imagery", database.tokens["supervisor"], body, ctype,
                        send_bytes=len(body) // 2, chunk=256 * 1024, pause_s=0.01)  # fmt: skip
        server.kill9()
        sock.close()
        server.start()
        assert _count(database.url, Imagery) == 1

        # 2. killed while the route copies the upload into data_dir/tmp (a big body, sent in full)
        big, ctype = multipart_body("file", "big.tif", random.Random(1).randbytes(96 * 2**20), {})
        answer: list[bytes] = []

        def send() -> None:
            with contextlib.suppress(OSError):
                sock = send_raw(server.port, "/api/v1/imagery", database.tokens["supervisor"], big, ctype)
                answer.append(sock.recv(100))

        sender = threading.Thread(target=send)
        sender.start()
        tmp = server.data_dir / "tmp"
        deadline = time.monotonic() + 60
        while not any(f.is_file() and f.stat().st_size > 0 for f in tmp.glob("imagery.*/*")):
            assert time.monotonic() < deadline and not answer, f"the upload was never caught mid-copy: {answer}"
            time.sleep(0.002)
        server.kill9()
        sender.join(30)
        assert not answer or answer == [b""], "the server answered before it was killed"
        assert list(tmp.glob("imagery.*")), "the killed upload's temp folder is left (to be removed at start)"

        server.start()
        assert _leftovers(server.data_dir) == []  # removed at startup
        assert _count(database.url, Imagery) == 1
        assert len(list((server.data_dir / "imagery").rglob("*.tif"))) == 1
        assert _upload(server.base, headers, after, "2024-06-01").status_code == 201  # and it serves again
        listing = httpx.get(f"{server.base}/imagery", headers=headers).json()
        assert listing["count"] == 2
    finally:
        server.stop()


def _projects_geojson(n: int, prefix: str) -> bytes:
    features = []
    for i in range(n):
        lon, lat = 117.05 + (i % 60) * 0.01, 39.95 + (i // 60) * 0.005
        ring = [[lon, lat], [lon + 0.004, lat], [lon + 0.004, lat + 0.003], [lon, lat + 0.003], [lon, lat]]
        features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                         "properties": {"项目名称": f"{prefix}项目{i}", "项目代码": f"{prefix}-{i:05d}",
                                        "建设单位": f"{prefix}建设单位{i % 7}"}})  # fmt: skip
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False).encode()


def test_kill_9_mid_import_commits_all_or_nothing(database, tmp_path):
    server = _server(database.url, tmp_path)
    try:
        headers = _h(database.tokens, "supervisor")
        first = httpx.post(f"{server.base}/projects/import", headers=headers, timeout=120,
                           files={"file": ("first.geojson", _projects_geojson(5, "甲"))},
                           data={"district_code": "120225"})  # fmt: skip
        assert first.status_code == 201, first.text

        big, ctype = multipart_body("file", "big.geojson", _projects_geojson(3000, "乙"), {"district_code": "120225"})
        answer: list[bytes] = []

        def send() -> None:
            with contextlib.suppress(OSError):
                sock = send_raw(server.port, "/api/v1/projects/import", database.tokens["supervisor"], big, ctype)
                answer.append(sock.recv(100))

        sender = threading.Thread(target=send)
        sender.start()
        deadline, since = time.monotonic() + 120, None
        while since is None or time.monotonic() - since < 0.3:  # the import's transaction writes for a while
            assert time.monotonic() < deadline and not answer, f"the import was never caught writing: {answer}"
            if not write_transaction_open(database.url):
                since = None
            elif since is None:
                since = time.monotonic()
            time.sleep(0.02)
        server.kill9()
        sender.join(30)
        assert not answer or answer == [b""], "the import finished before the kill; make it bigger"

        server.start()
        assert _leftovers(server.data_dir) == []
        assert _count(database.url, Project) == 5  # the committed import only: no half of the big one
        assert _count(database.url, ImportReport) == 1
        listing = httpx.get(f"{server.base}/projects", headers=headers, params={"q": "乙"}).json()
        assert listing["count"] == 0
    finally:
        server.stop()


def test_kill_9_during_reviews_keeps_every_acknowledged_review(database, add_patches, tmp_path):
    from shapely.geometry import box

    ids = add_patches([box(117.40 + i * 0.002, 40.0, 117.401 + i * 0.002, 40.001) for i in range(40)])
    server = _server(database.url, tmp_path)
    acknowledged: list[tuple[int, str]] = []
    stop = threading.Event()

    def reviewer(mine: list[int]) -> None:
        headers = _h(database.tokens, "inspector")
        with httpx.Client(base_url=server.base, headers=headers, timeout=30) as http:
            n = 0
            while not stop.is_set():
                pid = mine[n % len(mine)]
                n += 1
                try:
                    etag = http.get(f"/patches/{pid}").headers["etag"]
                    note = f"review {pid}-{n}-{threading.get_ident()}"
                    r = http.post(f"/patches/{pid}/reviews", headers={"If-Match": etag},
                                  json={"verdict": "confirmed_violation", "note": note})  # fmt: skip
                except (httpx.HTTPError, KeyError):
                    continue  # the server is gone
                if r.status_code == 201:
                    acknowledged.append((pid, note))

    threads = [threading.Thread(target=reviewer, args=(ids[i::4],)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill9()
        stop.set()
        for t in threads:
            t.join(30)
        assert len(acknowledged) >= 20, server.log.read_text()[-2000:]
        server.start()
        engine = make_engine(database.url)
        with make_sessionmaker(engine)() as session:
            notes = set(session.scalars(select(Review.note)))
            assert {note for _, note in acknowledged} <= notes  # nothing acknowledged is lost
            reviews = session.scalar(select(func.count()).select_from(Review))
            events = session.scalar(select(func.count()).where(AuditEvent.action == "reviewed"))
            assert reviews == events  # each review with its history entry, never one without the other
            for patch in session.scalars(select(Patch).where(Patch.id.in_(ids))):
                has = session.scalar(select(func.count()).where(Review.patch_id == patch.id))
                assert (patch.review_status == "reviewed") == (has > 0)
        engine.dispose()
        headers = _h(database.tokens, "inspector")
        etag = httpx.get(f"{server.base}/patches/{ids[0]}", headers=headers).headers["etag"]
        r = httpx.post(f"{server.base}/patches/{ids[0]}/reviews", headers={**headers, "If-Match": etag},
                       json={"verdict": "compliant"})  # fmt: skip
        assert r.status_code == 201
    finally:
        stop.set()
        server.stop()


def test_kill_9_during_a_scan_the_restart_finishes_it_once(database, tmp_path):
    before, after = write_pair(tmp_path / "tiles", size=1024, squares=SITES)
    server = _server(database.url, tmp_path)
    try:
        headers = _h(database.tokens, "supervisor")
        ids = [_upload(server.base, headers, p, d).json()["id"] for p, d in ((before, "2023-06-01"),
                                                                             (after, "2024-06-01"))]  # fmt: skip
        scan = httpx.post(f"{server.base}/scans", headers=headers,
                          json={"before_imagery_id": ids[0], "after_imagery_id": ids[1]}).json()  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            body = httpx.get(f"{server.base}/scans/{scan['id']}", headers=headers).json()
            if body["status"] == "running":
                break
            assert body["status"] == "queued" and time.monotonic() < deadline, body
            time.sleep(0.02)
        server.kill9()
        assert _count(database.url, Scan, Scan.status == "running") == 1
        assert _count(database.url, Patch) == 0  # nothing half-written

        server.start()  # the dead worker's scan is queued again at once and runs to the end
        deadline = time.monotonic() + 180
        while (body := httpx.get(f"{server.base}/scans/{scan['id']}", headers=headers).json())["status"] not in (
            "succeeded", "failed", "cancelled"):  # fmt: skip
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        assert (body["status"], body["attempts"]) == ("succeeded", 2), body
        assert body["patch_count"] == len(SITES)  # every planted site once: no duplicates
        assert _count(database.url, Patch) == _count(database.url, Patch, Patch.scan_id == scan["id"]) == len(SITES)
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------- PostgreSQL
@pytest.fixture
def pg_cluster():
    cluster = start_pg_cluster()
    if isinstance(cluster, str):
        pytest.skip(cluster)
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.mark.postgres
def test_postgres_restart_under_load_is_503_then_recovers_without_losing_writes(pg_cluster, tmp_path):
    from shapely.geometry import box

    from service.core.config import Settings
    from service.db import session_scope
    from service.patches import ingest_detections

    url = pg_cluster.url.rsplit("/", 1)[0] + "/postgres"
    tokens = _seed(url)
    settings = Settings(data_dir=tmp_path / "data", database_url=url, _env_file=None)  # type: ignore[call-arg]
    import geopandas as gpd

    squares = [box(117.4 + i * 0.002, 40.0, 117.401 + i * 0.002, 40.001) for i in range(24)]
    frame = gpd.GeoDataFrame({"confidence": [0.9] * 24}, geometry=squares, crs="EPSG:4326")
    engine = make_engine(url)
    with session_scope(make_sessionmaker(engine)) as session:
        ids = [p.id for p in ingest_detections(session, settings, frame)]
    engine.dispose()

    server = _server(url, tmp_path)
    # a scan runs through the restart too: its progress writes fail for a moment, its results must not
    before, after = write_pair(tmp_path / "tiles", size=1024, squares=SITES)
    sup = _h(tokens, "supervisor")
    pair = [_upload(server.base, sup, p, d).json()["id"] for p, d in ((before, "2023-06-01"), (after, "2024-06-01"))]
    answers: list[tuple[str, int | None, str, str]] = []  # kind, status, content type, retry-after
    acknowledged: list[str] = []
    stop = threading.Event()

    def record(kind: str, r: httpx.Response) -> None:
        answers.append((kind, r.status_code, r.headers.get("content-type", ""), r.headers.get("retry-after", "")))

    def reader() -> None:
        with httpx.Client(base_url=server.base, headers=_h(tokens, "supervisor"), timeout=30) as http:
            while not stop.is_set():
                try:
                    record("list", http.get("/patches", params={"limit": 20}))
                except httpx.HTTPError as exc:
                    answers.append(("list", None, repr(exc), ""))

    def writer(mine: list[int]) -> None:
        with httpx.Client(base_url=server.base, headers=_h(tokens, "inspector"), timeout=30) as http:
            n = 0
            while not stop.is_set():
                pid, n = mine[n % len(mine)], n + 1
                try:
                    got = http.get(f"/patches/{pid}")
                    record("detail", got)
                    if got.status_code != 200:
                        time.sleep(0.05)
                        continue
                    note = f"pg {pid}-{n}-{threading.get_ident()}"
                    r = http.post(f"/patches/{pid}/reviews", headers={"If-Match": got.headers["etag"]},
                                  json={"verdict": "false_detection", "note": note})  # fmt: skip
                    record("review", r)
                    if r.status_code == 201:
                        acknowledged.append(note)
                except httpx.HTTPError as exc:
                    answers.append(("review", None, repr(exc), ""))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    threads += [threading.Thread(target=writer, args=(ids[i::2],)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)
        scan = httpx.post(f"{server.base}/scans", headers=sup, json={"before_imagery_id": pair[0],
                                                                      "after_imagery_id": pair[1]}).json()  # fmt: skip
        deadline = time.monotonic() + 60
        while (body := httpx.get(f"{server.base}/scans/{scan['id']}", headers=sup).json())["progress"] <= 0:
            assert body["status"] in ("queued", "running") and time.monotonic() < deadline, body
            time.sleep(0.05)
        before_restart = len(answers)
        pg_cluster.restart()  # mid-detection
        restarted_at = len(answers)
        time.sleep(3.0)
        stop.set()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "a client hangs"
        statuses = {status for _, status, _, _ in answers}
        assert None not in statuses, [a for a in answers if a[1] is None][:3]  # no hang, no dropped connection
        assert statuses <= {200, 201, 409, 412, 503}, sorted(statuses)  # never a 500
        for kind, status, ctype, retry in answers:
            if status == 503:
                assert ctype == PROBLEM and retry, (kind, ctype, retry)
        assert before_restart > 0 and len(answers) > restarted_at
        # recovered by itself: every client's answers after the outage are ordinary again
        tail = answers[-8:]
        assert all(status in (200, 201, 409, 412) for _, status, _, _ in tail), tail
        assert httpx.get(f"{server.base}/health").status_code == 200
        engine = make_engine(url)
        with make_sessionmaker(engine)() as session:
            notes = set(session.scalars(select(Review.note)))
        engine.dispose()
        assert set(acknowledged) <= notes and acknowledged
        deadline = time.monotonic() + 180
        while (body := httpx.get(f"{server.base}/scans/{scan['id']}", headers=sup).json())["status"] not in (
            "succeeded", "failed", "cancelled"):  # fmt: skip
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        assert body["status"] == "succeeded" and body["patch_count"] == len(SITES), body
        assert _count(url, Patch, Patch.scan_id == scan["id"]) == len(SITES)  # stored once
    finally:
        stop.set()
        server.stop()


# ------------------------------------------------------------------------------------------- disk full
def test_full_disk_during_an_upload_answers_507_and_keeps_serving(settings, auth, tmp_path):
    """The ENOSPC code path without root: writes under data_dir/tmp fail after 64 KiB."""
    before, _ = write_pair(tmp_path / "tiles")
    upload = {"files": {"file": (before.name, before.read_bytes())}, "data": {"acquired_on": "2023-06-01"}}
    with TestClient(create_app(settings, scan_worker=False)) as client:
        with full_disk_under(settings.data_dir, free_bytes=64 * 1024):
            r = client.post("/api/v1/imagery", headers=auth("supervisor"), **upload)
        assert r.status_code == 507 and r.headers["content-type"] == PROBLEM, r.text
        assert "disk is full" in r.json()["detail"]
        assert _leftovers(settings.data_dir) == []  # the partial file is gone
        assert client.get("/api/v1/imagery", headers=auth("supervisor")).json()["count"] == 0
        r = client.post("/api/v1/imagery", headers=auth("supervisor"), **upload)
        assert r.status_code == 201, r.text


def test_a_real_full_data_directory(database, tmp_path):
    """An 8 MB tmpfs as the data directory of a real server (root only): an upload that does not fit is
    507 with nothing left behind, smaller ones still work."""
    data_dir = tmp_path / "data"
    with tmpfs(data_dir, "8m") as mounted:
        if not mounted:
            pytest.skip("mounting a tmpfs needs root (mount permission); the in-process ENOSPC test covers the path")
        before, after = write_pair(tmp_path / "tiles")
        big = tmp_path / "big.tif"  # 12 MB: more than the disk (it never gets as far as being checked)
        big.write_bytes(random.Random(2).randbytes(12 * 2**20))
        server = _server(database.url, tmp_path)
        try:
            headers = _h(database.tokens, "supervisor")
            assert _upload(server.base, headers, before, "2023-06-01").status_code == 201
            r = _upload(server.base, headers, big, "2024-06-02")
            assert r.status_code == 507 and r.headers["content-type"] == PROBLEM, r.text
            assert _leftovers(data_dir) == []
            assert sum(f.stat().st_size for f in data_dir.rglob("*") if f.is_file()) < 1024 * 1024
            assert httpx.get(f"{server.base}/imagery", headers=headers).json()["count"] == 1
            assert _upload(server.base, headers, after, "2024-06-01").status_code == 201
        finally:
            server.stop()


def test_a_full_disk_under_the_sqlite_database_refuses_writes_with_507_and_recovers(sqlite_template, tmp_path):
    """The embedded default keeps its SQLite file in the data directory: when that disk is full a write is
    507 and leaves nothing half-written; reads go on; once space is freed the same write succeeds."""
    import shutil
    import sqlite3

    from shapely.geometry import box

    from service.core.config import Settings
    from service.db import session_scope
    from service.patches import ingest_detections

    data_dir = tmp_path / "data"
    with tmpfs(data_dir, "8m") as mounted:
        if not mounted:
            pytest.skip("mounting a tmpfs needs root (mount permission)")
        db = data_dir / "soilwatch.db"
        shutil.copyfile(sqlite_template.url.removeprefix("sqlite:///"), db)
        url = f"sqlite:///{db}"
        settings = Settings(data_dir=data_dir, database_url=url, _env_file=None)  # type: ignore[call-arg]
        import geopandas as gpd

        frame = gpd.GeoDataFrame({"confidence": [0.9]}, geometry=[box(117.4, 40.0, 117.401, 40.001)], crs="EPSG:4326")
        engine = make_engine(url)
        with session_scope(make_sessionmaker(engine)) as session:
            (pid,) = [p.id for p in ingest_detections(session, settings, frame)]
        engine.dispose()
        server = Server(url, data_dir, tmp_path / "server.log").start()
        try:
            headers = _h(sqlite_template.tokens, "inspector")
            etag = httpx.get(f"{server.base}/patches/{pid}", headers=headers).headers["etag"]
            with sqlite3.connect(db) as conn:  # an empty WAL: the next write needs new space
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            ballast = data_dir / "ballast"
            fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
            try:
                while os.write(fd, b"\0" * 4096):  # until ENOSPC
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)
            review = {"verdict": "confirmed_violation", "note": "on a full disk"}
            r = httpx.post(f"{server.base}/patches/{pid}/reviews", headers={**headers, "If-Match": etag}, json=review)
            assert r.status_code == 507 and r.headers["content-type"] == PROBLEM, r.text
            got = httpx.get(f"{server.base}/patches/{pid}", headers=headers)  # reads still work
            assert got.status_code == 200 and got.json()["review_status"] == "unreviewed"
            assert got.headers["etag"] == etag
            ballast.unlink()
            r = httpx.post(f"{server.base}/patches/{pid}/reviews", headers={**headers, "If-Match": etag}, json=review)
            assert r.status_code == 201, r.text
        finally:
            server.stop()
        assert _count(url, Review) == 1
        assert _count(url, AuditEvent, AuditEvent.action == "reviewed") == 1


def test_an_upload_stored_but_never_committed_is_removed_at_a_later_start(settings, auth, tmp_path):
    """A kill between moving an upload into data/imagery and committing its row (too short a window to hit
    with a real kill): an unreferenced file older than an hour goes at the next start, a younger one (maybe
    being committed by a live process) and the files of real rows stay."""
    from service.imagery import final_path

    before, _ = write_pair(tmp_path / "tiles")
    with TestClient(create_app(settings, scan_worker=False)) as client:
        upload = {"file": (before.name, before.read_bytes())}
        r = client.post("/api/v1/imagery", headers=auth("supervisor"), files=upload, data={"acquired_on": "2023-06-01"})
        assert r.status_code == 201, r.text
    kept = final_path(settings.data_dir, r.json()["sha256"])
    old, young = final_path(settings.data_dir, "ab" * 32), final_path(settings.data_dir, "cd" * 32)
    for orphan in (old, young):
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"half of an upload")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(kept, (two_hours_ago, two_hours_ago))
    with TestClient(create_app(settings, scan_worker=False)) as client:
        assert client.get("/api/v1/imagery", headers=auth("supervisor")).json()["count"] == 1
    assert kept.exists() and young.exists() and not old.exists()
