"""Request-size limits applied before any route runs, and CORS (closed unless origins are configured).

- **Bodies**: a multipart upload may carry up to the largest upload limit (``max_upload_bytes`` /
  ``max_import_bytes``, whose routes check their own limit exactly) plus 1 MiB of form overhead; any
  other body (JSON) up to ``max_body_bytes``. A declared ``Content-Length`` over the limit is refused
  before a byte is read; a chunked body is cut off as soon as it passes the limit. Both answer 413.
- **Query strings**: at most ``max_query_bytes`` long, ``max_query_params`` parameters and
  ``max_query_value_chars`` per value (bbox, id lists, search text …); more answers 422.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.problems import problem_response
from service.core.config import Settings

__all__ = ["RequestLimitMiddleware", "BodyTooLarge", "install_middleware", "MULTIPART_OVERHEAD_BYTES"]

#: Room for multipart boundaries and the small form fields next to an upload's file.
MULTIPART_OVERHEAD_BYTES = 1024 * 1024


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes its limit. FastAPI passes HTTPExceptions raised while it
    reads a body on to the problem+json handler (any other exception would become a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"request body is over the limit of {limit:,} bytes; send less (uploads go as multipart files)",
        )


class RequestLimitMiddleware:
    """Pure ASGI middleware enforcing the body and query-string limits of :class:`Settings`."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def body_limit(self, scope: Scope) -> int:
        """The byte limit for this request's body, chosen by its content type."""
        content_type = ""
        for name, value in scope.get("headers", []):
            if name == b"content-type":
                content_type = value.decode("latin-1").lower()
        if content_type.startswith("multipart/form-data"):
            return max(self.settings.max_upload_bytes, self.settings.max_import_bytes) + MULTIPART_OVERHEAD_BYTES
        return self.settings.max_body_bytes

    def query_problem(self, scope: Scope) -> str | None:
        """Why the query string is too big, or None."""
        raw: bytes = scope.get("query_string", b"")
        s = self.settings
        if len(raw) > s.max_query_bytes:
            return f"query string of {len(raw):,} bytes is over the limit of {s.max_query_bytes:,}; narrow the query"
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
        if len(pairs) > s.max_query_params:
            return f"{len(pairs)} query parameters is over the limit of {s.max_query_params}; send fewer"
        for name, value in pairs:
            if len(value) > s.max_query_value_chars:
                return (
                    f"query parameter {name[:40]!r} is {len(value):,} characters, over the limit of "
                    f"{s.max_query_value_chars}; shorten it"
                )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (problem := self.query_problem(scope)) is not None:
            response = problem_response(Request(scope), 422, "Invalid request", problem)
            await response(scope, receive, send)
            return
        limit = self.body_limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            response = problem_response(
                Request(scope),
                413,
                "Payload too large",
                f"request body of {declared:,} bytes is over the limit of {limit:,}; send less",
                {"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:  # raised where no handler caught it (e.g. a route reading the stream)
            if started:
                raise
            response = problem_response(Request(scope), 413, "Payload too large", str(exc.detail))
            await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """Add the request limits and, only when ``settings.cors_origins`` is set, CORS for those origins.

    Tokens travel in the Authorization header, never in cookies, so CORS never allows credentials.
    """
    app.add_middleware(RequestLimitMiddleware, settings=settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match"],
            expose_headers=["ETag", "Retry-After", "Location"],
            allow_credentials=False,
            max_age=600,
        )
