"""All HTTP error mapping in one place: every error body is ``application/problem+json`` (RFC 9457)."""

from __future__ import annotations

import errno
import logging
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import ServiceError

__all__ = ["install_problem_handlers", "problem_response", "is_disk_full", "PROBLEM_JSON"]

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


#: Seconds a client should wait before retrying while the database is unreachable (Retry-After).
RETRY_AFTER_S = 5
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the disk is full: ENOSPC/EDQUOT, SQLite's SQLITE_FULL or
    PostgreSQL's ``disk_full`` (SQLSTATE 53100)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS:
            return True
        if getattr(current, "sqlite_errorcode", None) == 13 or getattr(current, "sqlstate", None) == "53100":
            return True  # SQLITE_FULL; PostgreSQL disk_full
        if "database or disk is full" in str(current) or "No space left on device" in str(current):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


async def _disk_full(request: Request, exc: Exception) -> JSONResponse:
    log.error("disk full on %s %s: %s", request.method, request.url.path, exc)
    return problem_response(
        request,
        507,
        "Insufficient storage",
        "the server's disk is full; nothing was saved. Ask the administrator to free space in the data "
        "directory, then send it again",
    )


async def _os_error(request: Request, exc: Exception) -> JSONResponse:
    if is_disk_full(exc):
        return await _disk_full(request, exc)
    return await _unhandled(request, exc)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """Lost connections, a restarting server, a locked SQLite file or an exhausted pool are 503: retry."""
    if is_disk_full(exc):
        return await _disk_full(request, exc)
    unavailable = isinstance(exc, (OperationalError, InterfaceError, PoolTimeoutError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )
    if not unavailable:
        return await _unhandled(request, exc)
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, str(exc).splitlines()[0])
    return problem_response(
        request,
        503,
        "Database unavailable",
        f"the database did not answer (restarting, unreachable or busy); nothing was saved, retry in {RETRY_AFTER_S} s",
        {"Retry-After": str(RETRY_AFTER_S)},
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
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeoutError, _database_error)
    app.add_exception_handler(OSError, _os_error)
    app.add_exception_handler(Exception, _unhandled)
