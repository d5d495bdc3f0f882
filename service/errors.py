"""Errors of the service: one root, narrow subclasses that also inherit the matching built-in.

Each class carries the HTTP status and problem title used by the exception handlers in
:mod:`service.api.problems`; routes raise these and never build HTTP errors themselves.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ServiceError",
    "ConfigError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "InvalidInputError",
    "ImportFormatError",
    "UnsafeArchiveError",
    "PayloadTooLargeError",
    "ConflictError",
    "PreconditionFailedError",
    "PreconditionRequiredError",
    "TooManyRequestsError",
]


class ServiceError(Exception):
    """Root of every error raised by :mod:`service`."""

    status_code: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.extra = extra  # extra members of the problem+json body

    def __str__(self) -> str:
        return self.message


class ConfigError(ServiceError, ValueError):
    """A setting is missing or invalid."""


class AuthenticationError(ServiceError, PermissionError):
    status_code = 401
    title = "Not authenticated"


class PermissionDeniedError(ServiceError, PermissionError):
    status_code = 403
    title = "Forbidden"


class NotFoundError(ServiceError, LookupError):
    status_code = 404
    title = "Not found"


class InvalidInputError(ServiceError, ValueError):
    status_code = 422
    title = "Invalid input"


class ImportFormatError(InvalidInputError):
    """An uploaded file is not in a format we read, or lacks a part (e.g. the .prj of a Shapefile)."""

    status_code = 400
    title = "Unreadable file"


class UnsafeArchiveError(ImportFormatError):
    """A zip holds paths outside itself, links, or expands far beyond its size (zip bomb)."""

    title = "Unsafe archive"


class PayloadTooLargeError(ServiceError, ValueError):
    status_code = 413
    title = "Payload too large"


class ConflictError(ServiceError, ValueError):
    status_code = 409
    title = "Conflict"


class PreconditionFailedError(ServiceError, ValueError):
    """If-Match did not match the current ETag: someone else saved first."""

    status_code = 412
    title = "Precondition failed"


class PreconditionRequiredError(ServiceError, ValueError):
    status_code = 428
    title = "Precondition required"


class TooManyRequestsError(ServiceError, PermissionError):
    """Too many failed sign-ins from one client address; the response carries Retry-After."""

    status_code = 429
    title = "Too many requests"
