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

from fastapi.testclient import TestClient


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
            for code, response in responses.items():
                if code.startswith(("4", "5")):
                    assert list(response.get("content", {})) == ["application/problem+json"], (label, code)
