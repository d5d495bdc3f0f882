"""Every role against every endpoint (table-driven): 401 without a token, 403 below the needed role."""

from __future__ import annotations

import pytest

ROLES = ["viewer", "inspector", "supervisor", "admin"]
RANK = {role: i for i, role in enumerate(ROLES)}

#: (method, path, minimum role or None for public, request kwargs). Mutations aim at a missing id or
#: send an empty file, so allowed roles get 4xx other than 401/403 and nothing changes between rows.
ENDPOINTS = [
    ("GET", "/api/v1/health", None, {}),
    ("GET", "/api/v1/users/me", "viewer", {}),
    ("GET", "/api/v1/districts", "viewer", {}),
    ("GET", "/api/v1/projects", "viewer", {}),
    ("GET", "/api/v1/projects/999999", "viewer", {}),
    ("GET", "/api/v1/projects/imports/999999", "viewer", {}),
    ("POST", "/api/v1/projects/import", "supervisor", {"files": {"file": ("empty.zip", b"")}}),
    ("PATCH", "/api/v1/projects/999999", "supervisor", {"json": {"name": "x"}}),
    ("DELETE", "/api/v1/projects/999999", "supervisor", {}),
    ("POST", "/api/v1/imagery", "supervisor", {"files": {"file": ("x.tif", b"junk")}}),
    ("GET", "/api/v1/imagery", "viewer", {}),
    ("GET", "/api/v1/imagery/999999", "viewer", {}),
    ("GET", "/api/v1/patches", "viewer", {}),
    ("GET", "/api/v1/patches/999999", "viewer", {}),
    ("GET", "/api/v1/patches/999999/history", "viewer", {}),
    ("PATCH", "/api/v1/patches/999999", "supervisor", {"json": {}}),
    ("POST", "/api/v1/patches/999999/reviews", "inspector", {"json": {"verdict": "compliant"}}),
    ("GET", "/api/v1/exports/patches", "viewer", {"params": {"format": "csv"}}),
    ("GET", "/api/v1/exports/training-labels", "supervisor", {}),
    ("GET", "/api/v1/stats", "viewer", {}),
    ("GET", "/api/v1/credit-list", "viewer", {}),
    ("GET", "/api/v1/patches/999999/chips/before.png", "viewer", {}),
    ("GET", "/api/v1/patches/999999/chips/after.png", "viewer", {}),
    ("POST", "/api/v1/scans", "supervisor", {"json": {}}),
    ("GET", "/api/v1/scans", "viewer", {}),
    ("GET", "/api/v1/scans/999999", "viewer", {}),
    ("POST", "/api/v1/scans/999999/cancel", "supervisor", {}),
    ("POST", "/api/v1/patches/999999/photos", "inspector", {"files": {"file": ("p.png", b"")}}),
    ("GET", "/api/v1/patches/999999/photos/p.jpg", "viewer", {}),
    ("GET", "/api/v1/map/patches.geojson", "viewer", {}),
    ("GET", "/api/v1/map/projects.geojson", "viewer", {}),
    ("GET", "/api/v1/map/districts.geojson", "viewer", {}),
    ("GET", "/api/v1/map/imagery/999999/tiles/17/1/1.png", "viewer", {}),
]


def test_every_route_is_in_the_table(client):
    paths = client.get("/openapi.json").json()["paths"]
    routed = {(m.upper(), p) for p, ops in paths.items() for m in ops}
    tabled = {(m, _template(p)) for m, p, _, _ in ENDPOINTS}
    assert routed - tabled == set(), "add the new routes to ENDPOINTS"


def _template(path: str) -> str:
    path = path.replace("/tiles/17/1/1.png", "/tiles/{z}/{x}/{y}.png").replace("/photos/p.jpg", "/photos/{photo_name}")
    for prefix, name in (
        ("/patches/", "patch_id"),
        ("/scans/", "scan_id"),
        ("/imagery/", "imagery_id"),
        ("/projects/imports/", "import_id"),
        ("/projects/", "project_id"),
    ):
        if prefix + "999999" in path:
            return path.replace("999999", "{" + name + "}")
    return path


def test_role_matrix(client, auth):
    wrong = []
    for method, path, minimum, kwargs in ENDPOINTS:
        anonymous = client.request(method, path, **kwargs).status_code
        if minimum is None:
            if anonymous in (401, 403):
                wrong.append(f"{method} {path} anonymous: {anonymous}")
            continue
        if anonymous != 401:
            wrong.append(f"{method} {path} anonymous: {anonymous}, expected 401")
        for role in ROLES:
            status = client.request(method, path, headers=auth(role), **kwargs).status_code
            allowed = RANK[role] >= RANK[minimum]
            if allowed and status in (401, 403) or not allowed and status != 403:
                wrong.append(f"{method} {path} as {role}: {status} (allowed={allowed})")
    assert wrong == []


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Token sw_x"])
def test_malformed_authorization_is_401(client, header):
    assert client.get("/api/v1/users/me", headers={"Authorization": header}).status_code == 401
