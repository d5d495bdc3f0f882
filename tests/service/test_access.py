"""Access hardening: token expiry and revocation, the failed sign-in limiter, request-size limits, CORS,
and no secrets in the logs (issue #8)."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box
from sqlalchemy import select, update

from service.core.config import Settings
from service.core.security import FailureLimiter, redact
from service.db import make_engine, make_sessionmaker, session_scope
from service.main import create_app
from service.models import ApiToken, AuditEvent, User
from service.users import issue_token

ME = "/api/v1/users/me"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _new_token(settings: Settings, user: str, expires_in: dt.timedelta | None = None) -> str:
    engine = make_engine(settings)
    with session_scope(make_sessionmaker(engine)) as session:
        owner = session.scalar(select(User).where(User.name == user))
        token = issue_token(session, owner, expires_in=expires_in)
    engine.dispose()
    return token


def _set_expiry(settings: Settings, token_prefix: str, when: dt.datetime) -> None:
    engine = make_engine(settings)
    with session_scope(make_sessionmaker(engine)) as session:
        session.execute(update(ApiToken).where(ApiToken.prefix == token_prefix).values(expires_at=when))
    engine.dispose()


# --- expiry and revocation ------------------------------------------------------------------------------


def test_expired_token_is_401_saying_so(client, settings):
    token = _new_token(settings, "inspector", dt.timedelta(days=1))
    assert client.get(ME, headers=_bearer(token)).status_code == 200
    _set_expiry(settings, token[:10], dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    response = client.get(ME, headers=_bearer(token))
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    detail = response.json()["detail"]
    assert "expired on" in detail and token[:6] in detail and token not in detail


def test_token_without_expiry_still_works(client, auth):
    """Tokens made before migration 0004 have no expiry (the seeded ones too) and keep working."""
    assert client.get(ME, headers=auth("viewer")).status_code == 200


def test_sign_out_revokes_only_that_token(client, settings, auth):
    first = _new_token(settings, "viewer")
    second = _new_token(settings, "viewer")
    assert client.delete("/api/v1/users/me/tokens/current", headers=_bearer(first)).status_code == 204
    response = client.get(ME, headers=_bearer(first))
    assert response.status_code == 401 and "was revoked on" in response.json()["detail"]
    assert client.get(ME, headers=_bearer(second)).status_code == 200
    assert client.get(ME, headers=auth("viewer")).status_code == 200


def test_last_use_is_recorded_to_the_hour(client, settings, auth):
    spare = _new_token(settings, "inspector")

    def last_used() -> str | None:
        listing = client.get("/api/v1/users/me/tokens", headers=auth("inspector")).json()
        return next(t["last_used_at"] for t in listing if t["prefix"] == spare[:10])

    assert last_used() is None  # issued, never used
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    assert client.get(ME, headers=_bearer(spare)).status_code == 200
    first = last_used()
    assert first is not None and dt.datetime.fromisoformat(first).replace(tzinfo=dt.UTC) >= before
    assert client.get(ME, headers=_bearer(spare)).status_code == 200
    assert last_used() == first  # within the hour: not written again
    engine = make_engine(settings)  # two hours later, the next use writes it again
    with session_scope(make_sessionmaker(engine)) as session:
        old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
        session.execute(update(ApiToken).where(ApiToken.prefix == spare[:10]).values(last_used_at=old))
    engine.dispose()
    assert client.get(ME, headers=_bearer(spare)).status_code == 200
    again = last_used()
    assert again is not None and dt.datetime.fromisoformat(again).replace(tzinfo=dt.UTC) >= before


def test_user_lists_and_revokes_own_tokens_not_others(client, settings, auth):
    spare = _new_token(settings, "inspector")
    listing = client.get("/api/v1/users/me/tokens", headers=auth("inspector")).json()
    assert spare[:10] in {t["prefix"] for t in listing}
    assert all(spare not in str(t) and set(t) >= {"id", "prefix", "state", "expires_at"} for t in listing)
    spare_id = next(t["id"] for t in listing if t["prefix"] == spare[:10])
    # another user cannot revoke it, nor learn it exists
    assert client.delete(f"/api/v1/users/me/tokens/{spare_id}", headers=auth("viewer")).status_code == 404
    assert client.get(ME, headers=_bearer(spare)).status_code == 200
    assert client.delete(f"/api/v1/users/me/tokens/{spare_id}", headers=auth("inspector")).status_code == 204
    assert client.get(ME, headers=_bearer(spare)).status_code == 401
    states = {t["prefix"]: t["state"] for t in client.get("/api/v1/users/me/tokens", headers=auth("inspector")).json()}
    assert states[spare[:10]] == "revoked"


def test_admin_revokes_a_users_token_and_it_is_audited(client, settings, auth):
    spare = _new_token(settings, "supervisor")
    user_id = client.get(ME, headers=_bearer(spare)).json()["id"]
    tokens = client.get(f"/api/v1/users/{user_id}/tokens", headers=auth("admin")).json()
    spare_id = next(t["id"] for t in tokens if t["prefix"] == spare[:10])
    assert client.delete(f"/api/v1/users/{user_id}/tokens/{spare_id}", headers=auth("supervisor")).status_code == 403
    assert client.delete(f"/api/v1/users/{user_id}/tokens/{spare_id}", headers=auth("admin")).status_code == 204
    assert client.get(ME, headers=_bearer(spare)).status_code == 401
    assert client.delete(f"/api/v1/users/{user_id + 1}/tokens/{spare_id}", headers=auth("admin")).status_code == 404
    engine = make_engine(settings)
    with make_sessionmaker(engine)() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.entity_type == "api_tokens"))
        assert event is not None and event.action == "token_revoked" and event.entity_id == spare_id
    engine.dispose()


# --- failed sign-ins --------------------------------------------------------------------------------------


def test_limiter_window_slides():
    now = [0.0]
    limiter = FailureLimiter(3, 60.0, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("a") is None
        limiter.fail("a")
    assert limiter.retry_after("a") == pytest.approx(60.0)
    assert limiter.retry_after("b") is None  # per address
    now[0] = 30.0
    assert limiter.retry_after("a") == pytest.approx(30.0)
    now[0] = 60.5  # the first failure left the window
    assert limiter.retry_after("a") is None


def test_limiter_memory_is_bounded():
    limiter = FailureLimiter(1, 60.0, max_keys=100)
    for i in range(1000):
        limiter.fail(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._failures) == 100
    assert limiter.retry_after("10.0.3.231") is not None  # the most recent are kept


def test_failed_sign_ins_are_rate_limited_per_address(settings, database):
    settings = settings.model_copy(update={"auth_failures_per_minute": 5})
    valid = _bearer(database.tokens["viewer"])
    app = create_app(settings, scan_worker=False)
    with TestClient(app, client=("10.0.0.1", 5000)) as attacker, TestClient(app, client=("10.0.0.2", 5000)) as other:
        for _ in range(20):  # valid callers are never counted
            assert attacker.get(ME, headers=valid).status_code == 200
        for i in range(5):
            assert attacker.get(ME, headers=_bearer(f"sw_guess{i:040d}")).status_code == 401
        blocked = attacker.get(ME, headers=_bearer("sw_guess" + "9" * 40))
        assert blocked.status_code == 429
        assert blocked.headers["content-type"] == "application/problem+json"
        assert 1 <= int(blocked.headers["retry-after"]) <= 60
        assert attacker.get(ME, headers=valid).status_code == 429  # the address waits, whatever it sends
        assert other.get(ME, headers=valid).status_code == 200  # other addresses are not slowed
        assert other.get(ME).status_code == 401  # no token at all is not a failed sign-in


# --- request sizes -----------------------------------------------------------------------------------------


@pytest.fixture
def small_client(settings) -> Iterator[TestClient]:
    """The app with tiny limits: 16 KiB bodies, 32 KiB uploads and imports."""
    small = settings.model_copy(
        update={"max_body_bytes": 16 * 1024, "max_upload_bytes": 32 * 1024, "max_import_bytes": 32 * 1024}
    )
    with TestClient(create_app(small, scan_worker=False)) as client:
        yield client


def _chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


def test_json_body_over_the_limit_is_413(small_client, auth):
    big = {"note": "x" * 20_000}
    response = small_client.post("/api/v1/scans", json=big, headers=auth("supervisor"))
    assert response.status_code == 413 and response.headers["content-type"] == "application/problem+json"
    assert "16,384" in response.json()["detail"]
    # the same body streamed without a Content-Length is cut off too
    headers = auth("supervisor") | {"Content-Type": "application/json"}
    streamed = small_client.post("/api/v1/scans", content=_chunks(20_000), headers=headers)
    assert streamed.status_code == 413
    # a small body goes through to the route (which rejects it for its own reasons)
    assert small_client.post("/api/v1/scans", json={}, headers=auth("supervisor")).status_code == 422


def _multipart(total_file_bytes: int, boundary: str = "sw-boundary") -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.tif"\r\n'
        "Content-Type: image/tiff\r\n\r\n"
    ).encode()
    yield from _chunks(total_file_bytes)
    yield f"\r\n--{boundary}--\r\n".encode()


def _files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.suffix not in {".db",
                  ".db-wal", ".db-shm"})  # fmt: skip


@pytest.mark.parametrize("size", [100 * 1024, 3 * 1024 * 1024], ids=["over-upload-limit", "over-request-limit"])
def test_streamed_upload_over_the_limit_is_413_and_leaves_nothing(small_client, settings, auth, size):
    """100 KiB passes the request limit (32 KiB + 1 MiB of form overhead) and is stopped by the upload's own
    limit while it is copied; 3 MiB is cut off while the body is still arriving. No Content-Length either way."""
    headers = auth("supervisor") | {"Content-Type": "multipart/form-data; boundary=sw-boundary"}
    response = small_client.post("/api/v1/imagery", content=_multipart(size), headers=headers)
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert _files_under(settings.data_dir) == []
    assert small_client.get("/api/v1/imagery", headers=auth("supervisor")).json()["count"] == 0


def test_declared_content_length_over_the_limit_is_refused_up_front(small_client, auth):
    headers = auth("supervisor") | {"Content-Type": "application/json", "Content-Length": str(10**9)}
    response = small_client.post("/api/v1/scans", content=b"{}", headers=headers)
    assert response.status_code == 413 and "1,000,000,000" in response.json()["detail"]


@pytest.mark.parametrize(
    "params, words",
    [
        ({"bbox": "1," * 300 + "1"}, ["'bbox'", "601"]),  # one value too long
        ({"q": "a" * 5000}, ["query string"]),  # the whole query too long
        ([("category", "x")] * 150, ["150 query parameters"]),  # too many values (an ids list)
    ],
    ids=["value", "query", "count"],
)
def test_query_over_the_limits_is_422(client, auth, params, words):
    response = client.get("/api/v1/patches", params=params, headers=auth("viewer"))
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert all(w in response.json()["detail"] for w in words), response.json()["detail"]


def test_ordinary_queries_pass(client, auth):
    params = {"bbox": "117.0,39.9,117.8,40.3", "category": ["suspected_unapproved", "compliant"], "limit": 10}
    assert client.get("/api/v1/patches", params=params, headers=auth("viewer")).status_code == 200


# --- CORS ---------------------------------------------------------------------------------------------------


def _preflight(client: TestClient, origin: str) -> httpx.Response:
    return client.options(
        ME,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )


def test_cors_closed_by_default(client, auth):
    assert client.app.state.settings.cors_origins == []
    response = client.get(ME, headers=auth("viewer") | {"Origin": "https://evil.example"})
    assert response.status_code == 200
    assert not any(h.startswith("access-control-") for h in response.headers)
    assert not any(h.startswith("access-control-") for h in _preflight(client, "https://evil.example").headers)


def test_cors_open_to_configured_origins_only(settings, auth, monkeypatch):
    monkeypatch.setenv("SOILWATCH_CORS_ORIGINS", "https://map.example.gov.cn, https://gis.example.gov.cn")
    configured = Settings(data_dir=settings.data_dir, database_url=settings.database_url, _env_file=None)
    assert configured.cors_origins == ["https://map.example.gov.cn", "https://gis.example.gov.cn"]
    with TestClient(create_app(configured, scan_worker=False)) as client:
        ok = _preflight(client, "https://gis.example.gov.cn")
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://gis.example.gov.cn"
        assert "access-control-allow-credentials" not in ok.headers  # tokens never ride on cookies
        simple = client.get(ME, headers=auth("viewer") | {"Origin": "https://map.example.gov.cn"})
        assert simple.headers["access-control-allow-origin"] == "https://map.example.gov.cn"
        other = client.get(ME, headers=auth("viewer") | {"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


# --- secrets never in the logs ------------------------------------------------------------------------------


def test_redact_masks_tokens_passwords_and_url_passwords():
    text = redact(
        "GET /api/v1/patches?token=sw_AbCdEfGhIjKlMnOp&x=1 Authorization: Bearer sw_QrStUvWxYz012345 "
        "postgresql+psycopg://soil:Pa55w0rd@db.example/soilwatch ?password=hunter2"
    )
    for secret in ("sw_AbCdEfGhIjKlMnOp", "sw_QrStUvWxYz012345", "Pa55w0rd", "hunter2"):
        assert secret not in text
    assert "x=1" in text and "db.example/soilwatch" in text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_secret_reaches_the_logs(settings, database, caplog):
    """Sign-in, failed sign-ins, a revoked token, tokens in headers and in query strings, through a real
    uvicorn server (its access log prints request lines with their query strings), and the db commands."""
    import uvicorn
    from typer.testing import CliRunner

    from service.cli.db import db_app
    from service.core.config import get_settings

    caplog.set_level(logging.DEBUG)
    valid = database.tokens["supervisor"]
    doomed = _new_token(settings, "viewer")
    db_password = "Db-Pa55-w0rd-xyz"
    secrets = [valid, doomed, "sw_wrongwrongwrongwrongwrong", db_password]

    app = create_app(settings, scan_worker=False)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level="debug"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            assert http.get(ME, headers=_bearer(valid)).status_code == 200
            assert http.get(ME, headers=_bearer(secrets[2])).status_code == 401
            assert http.get(f"{ME}?token={valid}&access_token={doomed}").status_code == 401
            assert http.get(f"/api/v1/patches?password={db_password}", headers=_bearer(valid)).status_code == 200
            assert http.delete("/api/v1/users/me/tokens/current", headers=_bearer(doomed)).status_code == 204
            assert http.get(ME, headers=_bearer(doomed)).status_code == 401
            assert http.get(f"/no/such/route/{valid}").status_code == 404
    finally:
        server.should_exit = True
        thread.join(timeout=20)

    # the db commands print the database URL: never its password
    url = settings.resolved_database_url
    if url.startswith("postgresql"):
        from sqlalchemy.engine import make_url

        url = make_url(url).set(password=db_password).render_as_string(hide_password=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOILWATCH_DATABASE_URL", url)
        get_settings.cache_clear()
        result = CliRunner().invoke(db_app, ["current"])
        result_up = CliRunner().invoke(db_app, ["upgrade"])
        get_settings.cache_clear()
    assert result.exit_code == 0 and result_up.exit_code == 0, result.output + result_up.output

    access = [r for r in caplog.records if r.name == "uvicorn.access"]
    assert len(access) >= 6  # the access log was captured
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]  # not the test's client
    logged = "\n".join(r.getMessage() for r in server_side) + result.output + result_up.output
    assert "failed sign-in" in logged  # failures are logged, without the token
    for secret in secrets:
        assert secret not in logged and secret[6:] not in logged, f"{secret[:6]}… leaked into the logs"


# --- the audit trail cannot be edited ------------------------------------------------------------------------


def _audit_rows(settings: Settings) -> list[tuple]:
    engine = make_engine(settings)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(AuditEvent.__table__).order_by(AuditEvent.id))]
    engine.dispose()
    return rows


def _routes_touching_audit(app) -> set[str]:
    """Routes whose path names the audit trail, history, reviews or a patch, found in the app itself."""
    from fastapi.routing import iter_route_contexts

    words = ("audit", "history", "review", "/patches/{patch_id}")
    return {r.path for r in iter_route_contexts(app.routes) if r.path and any(w in r.path for w in words)}


def test_no_api_call_changes_or_removes_audit_rows(client, settings, auth, add_patches):
    (patch_id,) = add_patches([box(117.1, 40.0, 117.101, 40.001)])
    etag = client.get(f"/api/v1/patches/{patch_id}", headers=auth("inspector")).headers["etag"]
    review = client.post(f"/api/v1/patches/{patch_id}/reviews", json={"verdict": "compliant", "note": "原始"},
                         headers=auth("inspector") | {"If-Match": etag})  # fmt: skip
    assert review.status_code in (200, 201), review.text
    before = _audit_rows(settings)
    assert before, "the review left an audit row"
    event_id, review_id = before[-1][0], review.json().get("id", 1)

    paths = _routes_touching_audit(client.app) | {
        "/api/v1/audit",
        "/api/v1/audit/{event_id}",
        "/api/v1/audit-events/{event_id}",
        "/api/v1/patches/{patch_id}/history/{event_id}",
        "/api/v1/patches/{patch_id}/reviews/{review_id}",
    }
    values = {"patch_id": str(patch_id), "event_id": str(event_id), "review_id": str(review_id)}
    edit = {"reason": "edited", "action": "nothing", "before": None, "after": None, "note": "改写", "id": event_id}
    statuses = {}
    for path in sorted(paths):
        url = path
        for name, value in values.items():
            url = url.replace("{" + name + "}", value)
        if "{" in url:  # a parameter we do not know (e.g. a photo name): a harmless value
            url = url.split("{")[0] + "x"
        for method in ("PUT", "PATCH", "DELETE", "POST"):
            response = client.request(method, url, json=edit, headers=auth("admin"))
            statuses[f"{method} {url}"] = response.status_code
    assert statuses  # something was tried
    after = _audit_rows(settings)
    assert after[: len(before)] == before, "an API call changed or removed audit rows"


def test_database_refuses_audit_updates_and_deletes(settings, client, auth, add_patches):
    """The triggers of migration 0004: no UPDATE, no DELETE — except the user_id → NULL of a deleted user."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    (patch_id,) = add_patches([box(117.1, 40.0, 117.101, 40.001)])
    etag = client.get(f"/api/v1/patches/{patch_id}", headers=auth("inspector")).headers["etag"]
    client.post(f"/api/v1/patches/{patch_id}/reviews", json={"verdict": "compliant"},
                headers=auth("inspector") | {"If-Match": etag})  # fmt: skip
    before = _audit_rows(settings)
    assert before
    engine = make_engine(settings)
    for statement in (
        "DELETE FROM audit_events",
        "UPDATE audit_events SET reason = 'rewritten'",
        "UPDATE audit_events SET action = 'none', user_id = NULL",
        "UPDATE audit_events SET at = CURRENT_TIMESTAMP",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    assert _audit_rows(settings) == before
    # deleting a user keeps their audit rows, with user_id set to NULL by the foreign key
    with engine.begin() as conn:
        inspector_id = conn.execute(text("SELECT id FROM users WHERE name = 'inspector'")).scalar_one()
        conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": inspector_id})
    engine.dispose()
    after = _audit_rows(settings)
    assert len(after) == len(before)
    assert [r[:2] + r[3:] for r in after] == [r[:2] + r[3:] for r in before]
    assert all(r[2] != inspector_id for r in after)
