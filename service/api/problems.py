"""All HTTP error mapping in one place: every error body is ``application/problem+json`` (RFC 9457)."""

from __future__ import annotations

import errno
import logging
from http import HTTPStatus
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import ServiceError

__all__ = [
    "install_problem_handlers",
    "problem_response",
    "problem_responses",
    "document_problems",
    "is_disk_full",
    "is_unavailable",
    "Problem",
    "ValidationProblem",
    "PROBLEM_JSON",
]

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
    titles = {404: "Not found", 405: "Method not allowed", 413: "Payload too large"}
    title = titles.get(exc.status_code) or _phrase(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}; see /docs for the API"
    return problem_response(request, exc.status_code, title, detail, dict(exc.headers or {}))


def _phrase(status: int) -> str:
    """``Bad request`` for 400 (what the framework raises for a body it cannot parse)."""
    try:
        return HTTPStatus(status).phrase.capitalize()
    except ValueError:
        return "HTTP error"


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


#: PostgreSQL SQLSTATEs after which the same request can succeed: connection exceptions (08…), the server
#: shutting down or starting up (57P01-57P03), too many connections, serialization failure, deadlock.
_TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300", "40001", "40P01")
_SQLITE_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED (primary codes)


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database is unreachable, restarting or busy — worth a retry — and not
    that the statement itself is wrong (e.g. SQLite's "Expression tree is too large", a 500)."""
    if isinstance(exc, PoolTimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _SQLITE_BUSY
    state = getattr(exc.orig, "sqlstate", None)
    return isinstance(exc, OperationalError) and (state is None or state.startswith(_TRANSIENT_SQLSTATES))


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """Lost connections, a restarting server, a locked SQLite file or an exhausted pool are 503: retry."""
    if is_disk_full(exc):
        return await _disk_full(request, exc)
    if not is_unavailable(exc):
        return await _unhandled(request, exc)
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, str(exc).splitlines()[0])
    return problem_response(
        request,
        503,
        "Database unavailable",
        f"the database did not answer (restarting, unreachable or busy); nothing was saved, retry in {RETRY_AFTER_S} s",
        {"Retry-After": str(RETRY_AFTER_S)},
    )


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    """A value the database cannot hold (an id beyond its integer range, a text longer than a column): 422.

    Also for :class:`OverflowError`, which SQLite's driver raises for an integer beyond 64 bits."""
    log.info("value rejected by the database on %s %s: %s", request.method, request.url.path, str(exc).splitlines()[0])
    return problem_response(
        request,
        422,
        "Invalid input",
        "a value does not fit the database (a number out of range or a text too long); check the values you sent",
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
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(OverflowError, _data_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeoutError, _database_error)
    app.add_exception_handler(OSError, _os_error)
    app.add_exception_handler(Exception, _unhandled)
    _install_openapi(app)


# --- OpenAPI: every error documented as problem+json -------------------------------------------------------


class Problem(BaseModel):
    """An error as RFC 9457 problem details (``application/problem+json``). Some errors add members, e.g.
    ``existing_id`` (409 on a duplicate upload) or ``limit_bytes`` (413)."""

    model_config = ConfigDict(extra="allow")
    type: str = Field("about:blank", description="Always about:blank: the status and title say it all")
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(description="What was wrong, naming the bad value, and what to do",
                        examples=["patch 17 not found (or not in your districts)"])  # fmt: skip
    instance: str | None = Field(None, description="The request path", examples=["/api/v1/patches/17"])


class ValidationItem(BaseModel):
    loc: list[str | int] = Field(description="path, query, header or body, then the field", examples=[["query", "x"]])
    msg: str
    type: str


class ValidationProblem(Problem):
    """422 for a request that does not match the schema: one item per bad field."""

    errors: list[ValidationItem] = Field(default_factory=list)


_REF = "#/components/schemas/"
_DESCRIPTIONS = {
    400: "Unreadable request or file (malformed multipart body, unknown file format, unsafe archive)",
    401: "Missing, unknown, revoked or expired API token",
    403: "Your role or districts do not allow this",
    404: "Not found, or not in your districts",
    409: "Conflicts with the current data (duplicate, already done, or changed by someone else meanwhile)",
    412: "If-Match names an old version: someone else saved first",
    413: "Larger than the configured limit",
    422: "Invalid parameters, body or file content",
    428: "If-Match is required",
    429: "Too many failed sign-ins from this address: wait for Retry-After seconds",
    503: "The database cannot be reached just now: nothing was changed; retry after Retry-After seconds",
    507: "The server's disk is full: nothing was saved; an administrator must free space",
}
_WRITES = frozenset({"post", "put", "patch", "delete"})


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for a route's error statuses, documented as problem+json, e.g.
    ``problem_responses(409, 413)``. 401, 404 (path parameters) and 422 are added to every operation that can
    answer them by :func:`document_problems`; routes declare the rest."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        model = "ValidationProblem" if code == 422 else "Problem"
        out[code] = {
            "description": _DESCRIPTIONS.get(code, HTTPStatus(code).phrase),
            "content": {PROBLEM_JSON: {"schema": {"$ref": f"{_REF}{model}"}}},
        }
    return out


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the generated OpenAPI ``schema`` say what the handlers above send, in place; returns it.

    Every operation behind the bearer token documents 401 and 429 (the failed sign-in limiter); one with path
    parameters 404 (unknown ids and rows of other districts alike); one with a body 400 (a body that cannot be
    parsed); one with parameters or a body 422 as :class:`ValidationProblem` (FastAPI's own
    ``HTTPValidationError`` never goes out). Every operation documents 503 (database unavailable) and every
    write 507 (disk full), as the handlers above answer them wherever they happen. Route-specific
    statuses come from :func:`problem_responses`.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, ValidationItem, ValidationProblem):
        components[model.__name__] = model.model_json_schema(ref_template=_REF + "{model}")
        components[model.__name__].pop("$defs", None)
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            parameters = operation.get("parameters", [])
            wanted = [503, 507] if method in _WRITES else [503]
            if "requestBody" in operation:
                wanted.append(400)
            if operation.get("security"):
                wanted += [401, 429]
            if any(p.get("in") == "path" for p in parameters):
                wanted.append(404)
            if parameters or "requestBody" in operation:
                wanted.append(422)
            for code, entry in problem_responses(*wanted).items():
                current = responses.get(str(code))
                if current is None or PROBLEM_JSON not in current.get("content", {}):
                    responses[str(code)] = entry  # replaces FastAPI's HTTPValidationError 422 too
    text = repr(schema["paths"])
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"{_REF}{unused}'" not in text:
            components.pop(unused, None)
    return schema


def _install_openapi(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
