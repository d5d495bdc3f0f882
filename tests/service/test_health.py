"""Health, authentication and problem+json basics."""

from __future__ import annotations

PROBLEM = "application/problem+json"


def test_health_needs_no_token(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] in {"sqlite", "postgresql"}


def test_me_without_token_is_401_problem(client):
    response = client.get("/api/v1/users/me")
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["status"] == 401 and "Bearer" in body["detail"]


def test_me_with_bad_token_is_401(client):
    response = client.get("/api/v1/users/me", headers={"Authorization": "Bearer sw_nope"})
    assert response.status_code == 401
    assert "'sw_nop…' is unknown" in response.json()["detail"]


def test_me_shows_role_and_districts(client, auth):
    body = client.get("/api/v1/users/me", headers=auth("supervisor")).json()
    assert body["name"] == "supervisor" and body["role"] == "supervisor"
    assert [d["code"] for d in body["districts"]] == ["120225"]
    assert body["all_districts"] is False


def test_districts_are_scoped(client, auth):
    mine = client.get("/api/v1/districts", headers=auth("supervisor")).json()
    assert [d["code"] for d in mine["data"]] == ["120225"]
    everything = client.get("/api/v1/districts", headers=auth("city_viewer")).json()
    assert {d["code"] for d in everything["data"]} == {"120225", "120223"}


def test_unknown_route_is_problem(client):
    response = client.get("/api/v1/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert "/api/v1/nope" in response.json()["detail"]


def test_openapi_lists_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/health" in paths and "/api/v1/users/me" in paths
