"""Errors of the nightly scan; all derive from :class:`NightlyError` (itself a :class:`ServiceError`)."""

from __future__ import annotations

from service.errors import ServiceError

__all__ = ["NightlyError", "ScanLockedError", "LockLostError", "InboxError", "MosaicError"]


class NightlyError(ServiceError):
    """Root of the nightly scan's errors."""


class ScanLockedError(NightlyError, RuntimeError):
    """Another nightly scan holds the lock and is alive."""

    status_code = 409
    title = "Scan already running"


class LockLostError(NightlyError, RuntimeError):
    """The lock went stale and another scan took it over; this one must stop writing."""


class InboxError(NightlyError, ValueError):
    """The inbox folder is missing or not a folder."""


class MosaicError(NightlyError, ValueError):
    """Scenes cannot be mosaicked (different CRS, band count or data type)."""
