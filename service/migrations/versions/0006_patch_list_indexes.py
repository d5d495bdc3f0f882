"""patch list indexes: the default order with and without the common filters; an R*Tree for bbox on SQLite

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 12:00:00

``GET /patches`` orders by ``priority DESC, area_m2 DESC, id``. B-tree indexes hold that order on its
own and after an equality on ``district_code`` (every non-admin user is scoped to districts), on
``district_code`` + ``category`` / ``review_status`` and on ``category`` / ``review_status``, so a page
is read in order and the scan stops after ``offset + limit`` rows instead of sorting every match; the
same indexes answer the (capped) count without reading the table. ``after_date`` + the order keys
serves a date range: the matches still have to be sorted, but from the index alone. The single-column
indexes on ``district_code``, ``category``, ``review_status``, ``after_date`` and ``priority`` lead
these and are dropped.

The bbox filter compares the ``min_x..max_y`` columns, of which a B-tree can only range over the
first. On PostgreSQL the list uses the GiST index on ``patches.geometry`` (migration 0001) through
``&&``; on SQLite (no SpatiaLite, see ``service/geometry.py``) this migration adds the built-in
R*Tree virtual table ``patches_rtree(id, min_x, max_x, min_y, max_y)``, filled from the table and
kept in step by three triggers. R*Tree stores 32-bit floats rounded outwards, so it only narrows the
candidates; the exact comparison on the bbox columns stays in the query.

Note for later migrations: a SQLite ``batch_alter_table("patches")`` recreates the table and drops
the triggers; create them again afterwards (:func:`create_rtree_triggers`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: name → the filter columns before the order keys
LIST_INDEXES = {
    "ix_patches_list_order": (),
    "ix_patches_district_list_order": ("district_code",),
    "ix_patches_district_category_list_order": ("district_code", "category"),
    "ix_patches_district_status_list_order": ("district_code", "review_status"),
    "ix_patches_category_list_order": ("category",),
    "ix_patches_status_list_order": ("review_status",),
    "ix_patches_after_date_list_order": ("after_date",),
}
#: single-column indexes of 0001 that lead a list index
REPLACED = ("district_code", "category", "review_status", "after_date", "priority")

_TRIGGERS = {
    "patches_rtree_insert": """
        CREATE TRIGGER patches_rtree_insert AFTER INSERT ON patches WHEN NEW.min_x IS NOT NULL
        BEGIN
            INSERT INTO patches_rtree VALUES (NEW.id, NEW.min_x, NEW.max_x, NEW.min_y, NEW.max_y);
        END""",
    "patches_rtree_update": """
        CREATE TRIGGER patches_rtree_update AFTER UPDATE OF id, min_x, max_x, min_y, max_y ON patches
        BEGIN
            DELETE FROM patches_rtree WHERE id = OLD.id;
            INSERT INTO patches_rtree SELECT NEW.id, NEW.min_x, NEW.max_x, NEW.min_y, NEW.max_y
                WHERE NEW.min_x IS NOT NULL;
        END""",
    "patches_rtree_delete": """
        CREATE TRIGGER patches_rtree_delete AFTER DELETE ON patches
        BEGIN
            DELETE FROM patches_rtree WHERE id = OLD.id;
        END""",
}


def create_rtree_triggers() -> None:
    """The triggers that keep ``patches_rtree`` in step with ``patches`` (SQLite only)."""
    for sql in _TRIGGERS.values():
        op.execute(sql)


def upgrade() -> None:
    for name, lead in LIST_INDEXES.items():
        op.create_index(name, "patches", [*lead, sa.text("priority DESC"), sa.text("area_m2 DESC"), "id"])
    for column in REPLACED:
        op.drop_index(f"ix_patches_{column}", table_name="patches")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE patches_rtree USING rtree(id, min_x, max_x, min_y, max_y)")
        op.execute(
            "INSERT INTO patches_rtree SELECT id, min_x, max_x, min_y, max_y FROM patches WHERE min_x IS NOT NULL"
        )
        create_rtree_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in _TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS patches_rtree")
    for column in REPLACED:
        op.create_index(f"ix_patches_{column}", "patches", [column])
    for name in LIST_INDEXES:
        op.drop_index(name, table_name="patches")
