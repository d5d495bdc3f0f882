"""Every route × role × district, table-driven.

- The table must name every route the app serves (read from ``app.routes``, pages and mounts included,
  so a new endpoint without a row fails ``test_every_route_is_in_the_table``).
- Role matrix: 401 without a token, 403 below the needed role, anything but 401/403 at or above it.
- Districts: every ``{id}`` route, called by a 蓟州 supervisor with the real ids of 静海 rows (ids guessed
  directly), answers 404 and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from shapely.geometry import box
from sqlalchemy import select
from starlette.routing import Mount

from service.db import make_engine, make_sessionmaker, session_scope
from service.models import ApiToken, Imagery, ImportReport, Patch, PriorityZone, Project, Scan, User, set_geometry

ROLES = ["viewer", "inspector", "supervisor", "admin"]
RANK = {role: i for i, role in enumerate(ROLES)}

#: (method, path as routed, minimum role or None for public, request kwargs). Path parameters are filled
#: per test (:func:`_fill`). Mutations aim at a missing id or send an empty file, so allowed roles get 4xx
#: other than 401/403 and nothing changes between rows.
ENDPOINTS = [
    # public: the API's health, its docs and the review map page
    ("GET", "/api/v1/health", None, {}),
    ("GET", "/openapi.json", None, {}),
    ("GET", "/docs", None, {}),
    ("GET", "/docs/oauth2-redirect", None, {}),
    ("GET", "/redoc", None, {}),
    ("GET", "/", None, {"follow_redirects": False}),
    ("GET", "/map", None, {}),
    ("GET", "/map/static/{path}", None, {}),
    # users and tokens
    ("GET", "/api/v1/users/me", "viewer", {}),
    ("GET", "/api/v1/users/me/tokens", "viewer", {}),
    ("DELETE", "/api/v1/users/me/tokens/{token_id}", "viewer", {}),
    ("DELETE", "/api/v1/users/me/tokens/current", "viewer", {}),  # signs out: run last (see _ordered)
    ("GET", "/api/v1/users/{user_id}/tokens", "admin", {}),
    ("DELETE", "/api/v1/users/{user_id}/tokens/{token_id}", "admin", {}),
    ("GET", "/api/v1/districts", "viewer", {}),
    ("GET", "/api/v1/districts/{code}/assignees", "supervisor", {}),
    # projects
    ("GET", "/api/v1/projects", "viewer", {}),
    ("GET", "/api/v1/projects/{project_id}", "viewer", {}),
    ("GET", "/api/v1/projects/imports/{import_id}", "viewer", {}),
    ("POST", "/api/v1/projects/import", "supervisor", {"files": {"file": ("empty.zip", b"")}}),
    ("PATCH", "/api/v1/projects/{project_id}", "supervisor", {"json": {"name": "x"}}),
    ("DELETE", "/api/v1/projects/{project_id}", "supervisor", {}),
    # priority zones (重点监管区域)
    ("GET", "/api/v1/priority-zones", "viewer", {}),
    ("GET", "/api/v1/priority-zones/{zone_id}", "viewer", {}),
    ("GET", "/api/v1/priority-zones/imports/{import_id}", "viewer", {}),
    ("POST", "/api/v1/priority-zones/import", "supervisor", {"files": {"file": ("empty.zip", b"")}}),
    ("PATCH", "/api/v1/priority-zones/{zone_id}", "supervisor", {"json": {"weight": 1}}),
    ("DELETE", "/api/v1/priority-zones/{zone_id}", "supervisor", {}),
    # imagery
    ("POST", "/api/v1/imagery", "supervisor", {"files": {"file": ("x.tif", b"junk")}}),
    ("GET", "/api/v1/imagery", "viewer", {}),
    ("GET", "/api/v1/imagery/{imagery_id}", "viewer", {}),
    # patches, reviews, chips, photos
    ("GET", "/api/v1/patches", "viewer", {}),
    ("GET", "/api/v1/patches/{patch_id}", "viewer", {}),
    ("GET", "/api/v1/patches/{patch_id}/history", "viewer", {}),
    ("PATCH", "/api/v1/patches/{patch_id}", "supervisor", {"json": {"assigned_to": None}}),
    ("POST", "/api/v1/patches/{patch_id}/reviews", "inspector", {"json": {"verdict": "compliant"}}),
    ("GET", "/api/v1/patches/{patch_id}/chips/before.png", "viewer", {}),
    ("GET", "/api/v1/patches/{patch_id}/chips/after.png", "viewer", {}),
    ("POST", "/api/v1/patches/{patch_id}/photos", "inspector", {"files": {"file": ("p.png", b"")}}),
    ("GET", "/api/v1/patches/{patch_id}/photos/{photo_name}", "viewer", {}),
    # exports, statistics, credit list
    ("GET", "/api/v1/exports/patches", "viewer", {"params": {"format": "csv"}}),
    ("GET", "/api/v1/exports/training-labels", "supervisor", {}),
    ("GET", "/api/v1/stats", "viewer", {}),
    ("GET", "/api/v1/credit-list", "viewer", {}),
    # scans
    ("POST", "/api/v1/scans", "supervisor", {"json": {}}),
    ("GET", "/api/v1/scans", "viewer", {}),
    ("GET", "/api/v1/scans/{scan_id}", "viewer", {}),
    ("POST", "/api/v1/scans/{scan_id}/cancel", "supervisor", {}),
    # the review map's layers and tiles
    ("GET", "/api/v1/map/patches.geojson", "viewer", {}),
    ("GET", "/api/v1/map/projects.geojson", "viewer", {}),
    ("GET", "/api/v1/map/priority-zones.geojson", "viewer", {}),
    ("GET", "/api/v1/map/districts.geojson", "viewer", {}),
    ("GET", "/api/v1/map/imagery/{imagery_id}/tiles/{z}/{x}/{y}.png", "viewer", {}),
]

#: Values for path parameters in the role matrix: ids that do not exist, and harmless names.
MISSING = {"z": "17", "x": "1", "y": "1", "photo_name": "p.jpg", "path": "app.js"}
_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def _fill(path: str, values: dict[str, str]) -> str:
    return _PARAM.sub(lambda m: values.get(m.group(1), "999999"), path)


def _ordered(rows: list[tuple]) -> list[tuple]:
    """The table with the sign-out rows last (they revoke the caller's token)."""
    return sorted(rows, key=lambda row: row[1].endswith("/tokens/current"))


def _routes(app) -> Iterator[tuple[str, str]]:
    """(method, path) of every route the app answers, HEAD left out (it follows GET)."""
    try:
        from fastapi.routing import iter_route_contexts  # FastAPI ≥ 0.160 includes routers lazily
    except ImportError:  # older FastAPI: app.routes is already flat
        contexts = list(app.routes)
    else:
        contexts = list(iter_route_contexts(app.routes))
    for route in contexts:
        original = getattr(route, "original_route", route)
        if isinstance(original, Mount):
            yield "GET", route.path + "/{path}"
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            yield method, route.path


def test_every_route_is_in_the_table(client):
    routed = set(_routes(client.app))
    assert len(routed) > 30  # the enumeration itself works
    tabled = {(m, p) for m, p, _, _ in ENDPOINTS}
    assert routed - tabled == set(), "add the new routes to ENDPOINTS (and to FOREIGN_EXPECT if needed)"
    assert tabled - routed == set(), "ENDPOINTS names routes the app no longer has"


def test_role_matrix(client, auth):
    wrong = []
    for method, path, minimum, kwargs in _ordered(ENDPOINTS):
        url = _fill(path, MISSING)
        anonymous = client.request(method, url, **kwargs).status_code
        if minimum is None:
            if anonymous in (401, 403) or anonymous >= 500:
                wrong.append(f"{method} {url} anonymous: {anonymous}")
            continue
        if anonymous != 401:
            wrong.append(f"{method} {url} anonymous: {anonymous}, expected 401")
        for role in ROLES:
            status = client.request(method, url, headers=auth(role), **kwargs).status_code
            allowed = RANK[role] >= RANK[minimum]
            if allowed and (status in (401, 403) or status >= 500) or not allowed and status != 403:
                wrong.append(f"{method} {url} as {role}: {status} (allowed={allowed})")
    assert wrong == []


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Token sw_x"])
def test_malformed_authorization_is_401(client, header):
    assert client.get("/api/v1/users/me", headers={"Authorization": header}).status_code == 401


@pytest.fixture
def foreign_ids(settings, add_patches) -> dict[str, str]:
    """One row of every kind in 静海 (120223), owned by supervisor_jinghai: path parameter → its id."""
    (patch_id,) = add_patches([box(117.0, 38.8, 117.001, 38.801)])
    engine = make_engine(settings)
    with session_scope(make_sessionmaker(engine)) as session:
        owner = session.scalar(select(User).where(User.name == "supervisor_jinghai"))
        assert owner is not None
        project = Project(code="JH-1", name="静海某项目", district_code="120223")
        set_geometry(project, box(117.0, 38.8, 117.01, 38.81))
        imagery = Imagery(
            filename="jh.tif",
            path=str(settings.data_dir / "jh.tif"),
            sha256="f" * 64,
            size_bytes=1,
            acquired_on=dt.date(2024, 5, 1),
            district_code="120223",
            footprint=box(117.0, 38.8, 117.1, 38.9),
        )
        report = ImportReport(user_id=owner.id, filename="jh.zip", format="shp")
        zone = PriorityZone(name="静海某水源保护区", kind="water_source", weight=50, district_code="120223")
        set_geometry(zone, box(117.0, 38.8, 117.01, 38.81))
        session.add_all([project, imagery, report, zone])
        session.flush()
        scan = Scan(status="succeeded", after_imagery_id=imagery.id, district_code="120223", created_by=owner.id)
        session.add(scan)
        session.flush()
        token_id = session.scalar(select(ApiToken.id).where(ApiToken.user_id == owner.id))
        ids = {
            "patch_id": patch_id,
            "project_id": project.id,
            "imagery_id": imagery.id,
            "import_id": report.id,
            "scan_id": scan.id,
            "token_id": token_id,
            "user_id": owner.id,
            "zone_id": zone.id,
        }
    engine.dispose()
    return {k: str(v) for k, v in ids.items()} | {"z": "12", "x": "3380", "y": "1550", "photo_name": "a.jpg"}


def _snapshot(settings) -> dict[str, object]:
    """Rows by id (PostgreSQL returns an updated row, e.g. a token's last_used_at, in another place)."""
    engine = make_engine(settings)
    with session_scope(make_sessionmaker(engine)) as session:
        snap = {
            "patches": [(p.id, p.version, p.review_status) for p in session.scalars(select(Patch).order_by(Patch.id))],
            "projects": [(p.id, p.version, p.name) for p in session.scalars(select(Project).order_by(Project.id))],
            "zones": [(z.id, z.version) for z in session.scalars(select(PriorityZone).order_by(PriorityZone.id))],
            "scans": [(s.id, s.status, s.cancel_requested) for s in session.scalars(select(Scan).order_by(Scan.id))],
            "tokens": [(t.id, t.revoked) for t in session.scalars(select(ApiToken).order_by(ApiToken.id))],
        }
    engine.dispose()
    return snap


def test_other_districts_ids_answer_404_and_change_nothing(client, auth, settings, foreign_ids):
    before = _snapshot(settings)
    wrong = []
    tried = 0
    for method, path, minimum, kwargs in _ordered(ENDPOINTS):
        if minimum is None or not any(f"{{{name}}}" in path for name in foreign_ids if name.endswith("_id")):
            continue
        tried += 1
        url = _fill(path, foreign_ids)
        status = client.request(method, url, headers=auth("supervisor"), **kwargs).status_code
        expected = 403 if RANK["supervisor"] < RANK[minimum] else 404
        if status != expected:
            wrong.append(f"{method} {url} as 蓟州 supervisor: {status}, expected {expected}")
    assert tried >= 15
    assert wrong == []
    assert _snapshot(settings) == before
    # the rows are there: their own district's supervisor sees them
    owner = auth("supervisor_jinghai")
    assert client.get(f"/api/v1/patches/{foreign_ids['patch_id']}", headers=owner).status_code == 200
    assert client.get(f"/api/v1/projects/{foreign_ids['project_id']}", headers=owner).status_code == 200
    assert client.get(f"/api/v1/scans/{foreign_ids['scan_id']}", headers=owner).status_code == 200
    assert client.get(f"/api/v1/priority-zones/{foreign_ids['zone_id']}", headers=owner).status_code == 200
