"""All HTTP error mapping in one place: every error body is ``application/problem+json`` (RFC 9457)."""

from __future__ import annotations

import logging
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import ServiceError

__all__ = ["install_problem_handlers", "problem_response", "PROBLEM_JSON"]

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


def problem_response(
    request: Request, status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": str(request.url.path),
        **extra,
    }
    return JSONResponse(jsonable_encoder(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(ServiceError, exc)  # registered for ServiceError only
    return problem_response(request, exc.status_code, exc.title, exc.message, exc.headers, **exc.extra)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(RequestValidationError, exc)
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
    return problem_response(request, 422, "Invalid request", detail, errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, exc)
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}; see /docs for the API"
    return problem_response(request, exc.status_code, title, detail, dict(exc.headers or {}))


async def _stale(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(
        request,
        409,
        "Conflict",
        "the record was changed by someone else while you saved; reload it and apply your change again",
    )


async def _integrity(request: Request, exc: Exception) -> JSONResponse:
    log.info("integrity error: %s", exc)
    return problem_response(
        request,
        409,
        "Conflict",
        "the change conflicts with existing data (a duplicate or a "
        "reference to a missing record); reload and check the values",
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(request, 500, "Internal error", "unexpected server error; the log has the details")


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(StaleDataError, _stale)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(Exception, _unhandled)
