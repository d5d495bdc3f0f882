"""Property-based fuzzing of the whole OpenAPI schema (issue #8) on SQLite and PostgreSQL.

Every operation of ``/openapi.json`` gets schemathesis-generated requests, valid and deliberately
invalid, with an admin, a district supervisor, an inspector and an invalid token, against the real app
seeded through its own API (see :mod:`tests.service.fuzzing`). No response may be a 5xx, each must match
the documented status codes, content types, body schemas and headers, and every error must be
``application/problem+json`` with a title and a detail.

Bounded for CI: a fixed seed and ``FUZZ_EXAMPLES`` cases per operation, token and generation mode on
SQLite, fewer on PostgreSQL (the same code paths; PostgreSQL adds its own SQL and types). The soak run
``benchmarks/fuzz_soak.py`` runs many more.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box

from service.core.config import Settings
from service.main import create_app
from tests.service.conftest import Template
from tests.service.fuzzing import SeededIds, fuzz_app, seed_service

#: Cases per operation, token and mode (positive, negative): SQLite / PostgreSQL.
FUZZ_EXAMPLES = {"sqlite": int(os.environ.get("SOILWATCH_FUZZ_EXAMPLES", 4)),
                 "postgresql": int(os.environ.get("SOILWATCH_FUZZ_EXAMPLES_PG", 2))}  # fmt: skip
SEED = 20240501
PROBLEM_JSON = "application/problem+json"


def test_openapi_documents_every_error_as_problem_json(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert {"Problem", "ValidationProblem"} <= set(spec["components"]["schemas"])
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            label = f"{method.upper()} {path}"
            if operation.get("security"):
                assert "401" in responses, label
            if any(p["in"] == "path" for p in operation.get("parameters", [])):
                assert "404" in responses, label
            if operation.get("parameters") or "requestBody" in operation:
                assert "422" in responses, label
            assert "503" in responses, label  # database unavailable: can happen anywhere
            if method in ("post", "put", "patch", "delete"):
                assert "507" in responses, label  # disk full: any write
            for code, response in responses.items():
                if code.startswith(("4", "5")):
                    assert list(response.get("content", {})) == ["application/problem+json"], (label, code)


@pytest.fixture
def seeded(settings: Settings, database: Template, tmp_path: Path) -> SeededIds:
    with TestClient(create_app(settings)) as client:
        return seed_service(client, database.tokens, tmp_path / "seed")


@pytest.mark.slow
def test_whole_schema(settings: Settings, database: Template, seeded: SeededIds) -> None:
    examples = FUZZ_EXAMPLES["sqlite" if database.url.startswith("sqlite") else "postgresql"]
    # Negative cases also mangle the Authorization header; with the sign-in limiter on, those failures would
    # soon answer 429 to everything. The valid tokens run without it, the invalid token with it.
    unlimited = settings.model_copy(update={"auth_failures_per_minute": 10**9})
    tokens = {name: database.tokens[name] for name in ("admin", "supervisor", "inspector")}
    report = fuzz_app(create_app(unlimited, scan_worker=False), tokens, seeded, max_examples=examples, seed=SEED)
    fuzz_app(create_app(settings, scan_worker=False), {"invalid": "sw_not-a-real-token-0123456789"}, seeded,
             max_examples=examples, seed=SEED, report=report)  # fmt: skip
    print(report.summary() | {"failures": len(report.failures)})
    assert report.cases > 0 and len(report.per_operation) >= 30, report.summary()
    assert not report.failures and not report.server_errors, report.describe()


# --- Bugs the fuzzer found, one regression test each -----------------------------------------------------------


def test_times_carry_their_utc_offset(client: TestClient, auth) -> None:
    """SQLite drops the offset; the schema promises RFC 3339 date-times (found: naive times on SQLite)."""
    tokens = client.get("/api/v1/users/me/tokens", headers=auth("admin")).json()
    assert tokens and all(t["created_at"].endswith(("Z", "+00:00")) for t in tokens), tokens


def test_huge_ids_and_offsets_answer_422(client: TestClient, auth) -> None:
    """Found: an id beyond 64 bits crashed SQLite's driver and one beyond 32 bits PostgreSQL's (500)."""
    for url in ("/api/v1/imagery/24546390000488851698924650496", "/api/v1/patches/99999999999",
                "/api/v1/projects?offset=100000000000000000000"):  # fmt: skip
        response = client.get(url, headers=auth("admin"))
        assert response.status_code == 422, (url, response.text)
        assert response.headers["content-type"] == PROBLEM_JSON


def test_null_for_a_required_field_is_422_not_a_conflict(client: TestClient, auth, add_patches) -> None:
    """Found: ``{"review_status": null}`` reached the database and came back as 409 (NOT NULL violated)."""
    [patch_id] = add_patches([box(117.40, 40.00, 117.401, 40.001)])
    response = client.patch(f"/api/v1/patches/{patch_id}", headers=auth("admin"), json={"review_status": None})
    assert response.status_code == 422 and "review_status" in response.json()["detail"], response.text
    assert client.get(f"/api/v1/patches/{patch_id}", headers=auth("admin")).json()["review_status"] == "unreviewed"


def test_unparseable_json_body_is_a_400_problem(client: TestClient, auth) -> None:
    """Found: bytes that are not JSON answered 400 titled "HTTP error", undocumented."""
    response = client.post("/api/v1/scans", headers={**auth("supervisor"), "Content-Type": "application/json"},
                           content=b"9+\xff\x00L")  # fmt: skip
    assert response.status_code == 400 and response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["title"] == "Bad request"
    operation = client.get("/openapi.json").json()["paths"]["/api/v1/scans"]["post"]
    assert "400" in operation["responses"]
