"""Audit trail: every change is an :class:`AuditEvent` (who, when, what, before → after, why)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from service.models import AuditEvent, User

__all__ = ["record", "snapshot", "snapshot_values"]


def snapshot(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """JSON-safe ``{field: value}`` of ``obj`` for the audit trail."""
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(obj, name, None)
        out[name] = value.isoformat() if isinstance(value, dt.date) else value
    return out


def snapshot_values(values: dict[str, Any]) -> dict[str, Any]:
    """The same JSON-safe form as :func:`snapshot`, from a plain dict."""
    return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in values.items()}


def record(
    session: Session,
    user: User | None,
    entity: Any,
    action: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditEvent:
    """Add one audit event for ``entity`` (an ORM row with ``id``); ``user=None`` is the system."""
    if before is not None and after is not None:  # keep only what changed
        keys = [k for k in after if before.get(k) != after.get(k)]
        before = {k: before.get(k) for k in keys}
        after = {k: after[k] for k in keys}
    event = AuditEvent(
        user_id=user.id if user is not None else None,
        entity_type=type(entity).__tablename__,
        entity_id=entity.id,
        action=action,
        before=before,
        after=after,
        reason=reason,
    )
    session.add(event)
    return event
