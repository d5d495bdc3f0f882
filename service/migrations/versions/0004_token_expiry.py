"""token expiry and revocation time; audit events cannot be updated or deleted

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 09:00:00

``api_tokens`` gains ``expires_at`` (NULL: never expires, for tokens made before this release) and
``revoked_at``. ``audit_events`` gets triggers on both databases that refuse DELETE and any UPDATE
other than the ``user_id → NULL`` that ``ON DELETE SET NULL`` does when a user row is deleted. The
failed sign-in rate limiter is in-process (per API process), so it needs no table.

Note for later migrations: a SQLite ``batch_alter_table("audit_events")`` recreates the table and drops
these triggers; create them again afterwards (:func:`create_audit_guard`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_SAME_EXCEPT_USER = (
    "NEW.id IS NOT DISTINCT FROM OLD.id AND NEW.at IS NOT DISTINCT FROM OLD.at"
    " AND NEW.entity_type IS NOT DISTINCT FROM OLD.entity_type"
    " AND NEW.entity_id IS NOT DISTINCT FROM OLD.entity_id AND NEW.action IS NOT DISTINCT FROM OLD.action"
    " AND NEW.before::text IS NOT DISTINCT FROM OLD.before::text"
    " AND NEW.after::text IS NOT DISTINCT FROM OLD.after::text"
    " AND NEW.reason IS NOT DISTINCT FROM OLD.reason AND NEW.user_id IS NULL"
)

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION soilwatch_audit_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND {_SAME_EXCEPT_USER} THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events are append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""

_SQLITE_SAME_EXCEPT_USER = (
    "NEW.id IS OLD.id AND NEW.at IS OLD.at AND NEW.entity_type IS OLD.entity_type"
    " AND NEW.entity_id IS OLD.entity_id AND NEW.action IS OLD.action AND NEW.before IS OLD.before"
    " AND NEW.after IS OLD.after AND NEW.reason IS OLD.reason AND NEW.user_id IS NULL"
)


def create_audit_guard() -> None:
    """Create the append-only triggers on ``audit_events`` for the current dialect."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events"
            " FOR EACH ROW EXECUTE FUNCTION soilwatch_audit_guard()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events"
            " BEGIN SELECT RAISE(ABORT, 'audit_events are append-only: DELETE refused'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events"
            f" WHEN NOT ({_SQLITE_SAME_EXCEPT_USER})"
            " BEGIN SELECT RAISE(ABORT, 'audit_events are append-only: UPDATE refused'); END"
        )


def drop_audit_guard() -> None:
    """Drop what :func:`create_audit_guard` made."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS soilwatch_audit_guard()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    create_audit_guard()


def downgrade() -> None:
    drop_audit_guard()
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("expires_at")
