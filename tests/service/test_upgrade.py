"""Upgrading a database of the previous release (revision 0003, the last one shipped) with data in every
table to head keeps every value and leaves a working app, on SQLite and PostgreSQL.

The seed below is written against the 0003 schema and never needs to change: later migrations are
covered because the test upgrades to whatever head is and compares only the columns 0003 had.
A migration that must transform existing values should say so in ``EXPECTED_CHANGES``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import box
from sqlalchemy import MetaData, create_engine, inspect, select, text
from sqlalchemy.exc import DBAPIError

from service.core.config import Settings
from service.core.security import hash_token, new_token
from service.db import alembic_config, upgrade_database
from service.main import create_app

PREVIOUS_RELEASE = "0003"
#: table → columns whose values a later migration changes on purpose (none so far).
EXPECTED_CHANGES: dict[str, set[str]] = {}

T0 = dt.datetime(2025, 6, 1, 8, 30, tzinfo=dt.UTC)
D0 = dt.date(2025, 5, 20)


def _geometry(geom: Any, dialect: str) -> Any:
    """The stored form of a lon/lat geometry: EWKB hex (PostGIS casts it) or WKB bytes (SQLite)."""
    if dialect == "postgresql":
        return shapely.to_wkb(shapely.set_srid(geom, 4326), hex=True, include_srid=True)
    return shapely.to_wkb(geom)


def _bbox(geom: Any) -> dict[str, float]:
    min_x, min_y, max_x, max_y = geom.bounds
    return {"min_x": min_x, "min_y": min_y, "max_x": max_x, "max_y": max_y}


def previous_release_rows(dialect: str, token: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """Rows for every table of revision 0003, in foreign-key order."""
    district = box(117.0, 39.9, 117.8, 40.3)
    project = box(117.10, 40.00, 117.12, 40.02)
    patch = box(117.11, 40.01, 117.111, 40.011)
    footprint = box(117.0, 39.9, 117.5, 40.2)
    return [
        ("districts", [
            {"code": "120225", "name": "蓟州区", "geometry": _geometry(district, dialect), **_bbox(district)},
        ]),
        ("users", [
            {"id": 1, "name": "admin", "role": "admin", "all_districts": True, "active": True, "created_at": T0},
            {"id": 2, "name": "王检查", "role": "inspector", "all_districts": False, "active": True, "created_at": T0},
        ]),
        ("user_districts", [{"user_id": 2, "district_code": "120225"}]),
        ("api_tokens", [
            {"id": 1, "user_id": 2, "token_hash": hash_token(token), "prefix": token[:10], "created_at": T0,
             "last_used_at": None, "revoked": False},
            {"id": 2, "user_id": 1, "token_hash": "0" * 64, "prefix": "sw_revoked", "created_at": T0,
             "last_used_at": T0, "revoked": True},
        ]),
        ("import_reports", [
            {"id": 1, "user_id": 1, "filename": "监管清单.zip", "format": "shp", "source_crs": "EPSG:4527",
             "encoding": "gbk", "rows_total": 2, "created": 1, "updated": 0, "unchanged": 0, "repaired": 0,
             "rejected": 1, "field_mapping": {"项目名称": "name"}, "errors": [{"row": 2, "reason": "无几何"}],
             "warnings": [], "created_at": T0},
        ]),
        ("projects", [
            {"id": 1, "code": "2025-120225-48-01-000001", "name": "蓟州某道路工程", "builder": "某建设公司",
             "industry": "公路", "approval_authority": "蓟州区水务局", "approval_number": "蓟水审〔2025〕1号",
             "approved_on": D0, "declared_area_hm2": 4.2, "approval_level": "区级", "project_category": "建设类",
             "project_nature": "新建", "construction_state": "在建", "vector_type": "responsibility",
             "district_code": "120225", "area_m2": 48000.0, "geometry": _geometry(project, dialect),
             "attributes": {"备注": "x"}, "import_id": 1, "version": 3, "created_at": T0, "updated_at": T0,
             **_bbox(project)},
        ]),
        ("imagery", [
            {"id": 1, "filename": "GF2_20250520.tif", "path": "/data/imagery/ab/ab.tif", "sha256": "ab" * 32,
             "size_bytes": 123_456_789, "acquired_on": D0, "sensor": "GF-2", "district_code": "120225",
             "crs": "EPSG:32650", "width": 1000, "height": 800, "band_count": 4, "resolution_m": 0.8,
             "footprint": _geometry(footprint, dialect), "uploaded_by": 1, "created_at": T0, **_bbox(footprint)},
        ]),
        ("scans", [
            {"id": 1, "status": "succeeded", "before_imagery_id": None, "after_imagery_id": 1,
             "district_code": "120225", "progress": 1.0, "message": None, "model": "baseline",
             "options": {"mode": "pair"}, "patch_count": 1, "cancel_requested": False, "created_by": 1,
             "created_at": T0, "started_at": T0, "finished_at": T0, "worker": "host:1", "heartbeat_at": T0,
             "attempts": 1},
        ]),
        ("patches", [
            {"id": 1, "patch_code": "2025_120225_00001", "scan_id": 1, "district_code": "120225",
             "geometry": _geometry(patch, dialect), "area_m2": 1200.5, "area_mu": 1.8, "lon": 117.1105,
             "lat": 40.0105, "before_date": None, "after_date": D0, "source_before": None,
             "source_after": "GF2_20250520.tif", "confidence": 0.91, "conf_max": 0.99, "model": "baseline",
             "change_type": "新增", "disturbance_type": None, "previous_patch_id": None,
             "category": "compliant", "category_reason": "inside project 1", "overlap_area_m2": 1200.5,
             "outside_area_m2": 0.0, "outside_share": 0.0, "nearest_project_id": 1, "nearest_distance_m": 0.0,
             "matched_at": T0, "priority": 0, "review_status": "reviewed", "verdict": "compliant",
             "assignee_id": 2, "version": 2, "created_at": T0, "updated_at": T0, **_bbox(patch)},
        ]),
        ("patch_matches", [
            {"id": 1, "patch_id": 1, "project_id": 1, "overlap_area_m2": 1200.5, "overlap_share": 1.0,
             "distance_m": 0.0},
        ]),
        ("reviews", [
            {"id": 1, "patch_id": 1, "reviewer_id": 2, "verdict": "compliant", "note": "现场核实：在红线内",
             "photos": ["a.jpg"], "created_at": T0},
        ]),
        ("audit_events", [
            {"id": 1, "at": T0, "user_id": 2, "entity_type": "patches", "entity_id": 1, "action": "review",
             "before": {"review_status": "unreviewed"}, "after": {"review_status": "reviewed"}, "reason": "核实"},
            {"id": 2, "at": T0, "user_id": None, "entity_type": "patches", "entity_id": 1,
             "action": "category_changed", "before": None, "after": {"category": "compliant"}, "reason": None},
        ]),
        ("nightly_runs", [
            {"id": 1, "status": "succeeded", "holder": None, "options": {"inbox": "/inbox"},
             "summary": {"jobs": 1}, "report_dir": "/data/nightly/1", "started_at": T0, "finished_at": T0},
        ]),
        ("nightly_jobs", [
            {"id": 1, "run_id": 1, "key": "k" * 64, "status": "succeeded", "scan_id": 1, "after_date": D0,
             "before_date": None, "after_ids": [1], "before_ids": [], "after_path": "/data/a.vrt",
             "before_path": None, "plan": b"\x00\x01plan", "units_total": 4, "units_failed": 0,
             "area_km2": 12.5, "patch_count": 1, "message": None, "created_at": T0, "finished_at": T0},
        ]),
        ("scan_units", [
            {"id": 1, "job_id": 1, "col_off": 0, "row_off": 0, "width": 512, "height": 512,
             "status": "done", "attempts": 1, "n_fragments": 2, "fragments": b"\x01\x02frag", "seconds": 1.5,
             "worker": "w1", "error": None, "finished_at": T0},
        ]),
        ("nightly_locks", [{"name": "nightly", "holder": "host:2", "acquired_at": T0, "heartbeat_at": T0}]),
    ]  # fmt: skip


def _snapshot(engine, columns: dict[str, list[str]]) -> dict[str, list[tuple]]:
    meta = MetaData()
    meta.reflect(engine, only=list(columns))
    out = {}
    with engine.connect() as conn:
        for name, cols in columns.items():
            table = meta.tables[name]
            rows = conn.execute(select(*(table.c[c] for c in cols))).all()
            out[name] = sorted((tuple(_plain(v) for v in row) for row in rows), key=repr)
    return out


def _plain(value: Any) -> Any:
    """Comparable values: naive UTC datetimes (SQLite forgets the zone), bytes for memoryviews."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def test_upgrade_from_the_previous_release_keeps_data_and_the_app_works(empty_database_url, tmp_path):
    from alembic.script import ScriptDirectory

    url = empty_database_url
    upgrade_database(url, PREVIOUS_RELEASE)
    engine = create_engine(url)
    dialect = engine.dialect.name
    token = new_token()
    seed = previous_release_rows(dialect, token)
    tables_at_0003 = set(inspect(engine).get_table_names()) - {"alembic_version", "spatial_ref_sys"}
    assert {name for name, _ in seed} == tables_at_0003, "the seed must fill every table of the previous release"
    meta = MetaData()
    meta.reflect(engine, only=sorted(tables_at_0003))
    with engine.begin() as conn:
        for name, rows in seed:
            conn.execute(meta.tables[name].insert(), rows)
        if dialect == "postgresql":  # explicit ids: move the sequences past them, as real use would have
            for name in tables_at_0003:
                if "id" in meta.tables[name].c:
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), 100)"))
    columns = {name: [c.name for c in meta.tables[name].columns] for name in tables_at_0003}
    before = _snapshot(engine, columns)
    engine.dispose()

    upgrade_database(url)  # to head, whatever head is

    engine = create_engine(url)
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head
    kept = {name: [c for c in cols if c not in EXPECTED_CHANGES.get(name, set())] for name, cols in columns.items()}
    after = _snapshot(engine, kept)
    before = {
        name: sorted((tuple(v for c, v in zip(columns[name], row, strict=True) if c in kept[name]) for row in rows),
                     key=repr)
        for name, rows in before.items()
    }  # fmt: skip
    for name in sorted(tables_at_0003):
        assert after[name] == before[name], f"{name}: values changed by the upgrade"
    engine.dispose()

    settings = Settings(data_dir=tmp_path / "data", database_url=url, _env_file=None)  # type: ignore[call-arg]
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings, scan_worker=False)) as client:
        me = client.get("/api/v1/users/me", headers=auth)
        assert me.status_code == 200 and me.json()["name"] == "王检查"  # old tokens never expire
        revoked = client.get("/api/v1/users/me", headers={"Authorization": "Bearer sw_revoked_whatever"})
        assert revoked.status_code == 401
        patch = client.get("/api/v1/patches/1", headers=auth)
        assert patch.status_code == 200 and patch.json()["patch_code"] == "2025_120225_00001"
        history = client.get("/api/v1/patches/1/history", headers=auth)
        assert history.status_code == 200 and len(history.json()["data"]) == 2
        assert client.get("/api/v1/projects/1", headers=auth).json()["name"] == "蓟州某道路工程"
        assert client.get("/api/v1/scans/1", headers=auth).json()["status"] == "succeeded"
        assert client.get("/api/v1/patches", headers=auth).json()["count"] == 1
        review = client.post("/api/v1/patches/1/reviews", json={"verdict": "false_detection", "note": "复核"},
                             headers=auth | {"If-Match": patch.headers["etag"]})  # fmt: skip
        assert review.status_code in (200, 201), review.text
        assert len(client.get("/api/v1/patches/1/history", headers=auth).json()["data"]) > 2  # audited

    engine = create_engine(url)  # the audit trail of the upgraded database is append-only
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id = 1"))
    engine.dispose()
