"""priority zones (重点监管区域): zones, the zones of each patch, import report subject

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.geometry

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "priority_zones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("district_code", sa.String(length=12), nullable=True),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.Column("geometry", service.geometry.GeometryType(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("source_file", sa.String(length=300), nullable=True),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("min_x", sa.Float(), nullable=True),
        sa.Column("min_y", sa.Float(), nullable=True),
        sa.Column("max_x", sa.Float(), nullable=True),
        sa.Column("max_y", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["district_code"], ["districts.code"]),
        sa.ForeignKeyConstraint(["import_id"], ["import_reports.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "kind", name="uq_priority_zones_name_kind"),
    )
    op.create_index("ix_priority_zones_bbox", "priority_zones", ["min_x", "max_x", "min_y", "max_y"])
    op.create_index("ix_priority_zones_kind", "priority_zones", ["kind"])
    op.create_index("ix_priority_zones_district_code", "priority_zones", ["district_code"])
    op.create_table(
        "patch_zones",
        sa.Column("patch_id", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["patch_id"], ["patches.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["zone_id"], ["priority_zones.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("patch_id", "zone_id"),
    )
    op.create_index("ix_patch_zones_zone_id", "patch_zones", ["zone_id"])
    # patches.priority_zone_id caches the top zone of patch_zones (which has the foreign keys). No foreign key
    # of its own: on SQLite adding one means copying the table, and dropping the old copy with foreign keys on
    # cascades to patch_matches and reviews. A plain column is one ALTER TABLE on both databases.
    op.add_column("patches", sa.Column("priority_zone_id", sa.Integer(), nullable=True))
    op.create_index("ix_patches_priority_zone_id", "patches", ["priority_zone_id"])
    op.add_column(
        "import_reports", sa.Column("subject", sa.String(length=20), server_default="projects", nullable=False)
    )
    if postgres:  # like the other spatial tables (0001): a GiST index for SQL/GIS users
        op.execute("CREATE INDEX ix_priority_zones_geometry_gist ON priority_zones USING gist (geometry)")


def downgrade() -> None:
    op.drop_column("import_reports", "subject")
    op.drop_index("ix_patches_priority_zone_id", table_name="patches")
    op.drop_column("patches", "priority_zone_id")  # SQLite ≥ 3.35 drops a plain column in place
    op.drop_index("ix_patch_zones_zone_id", table_name="patch_zones")
    op.drop_table("patch_zones")
    op.drop_index("ix_priority_zones_district_code", table_name="priority_zones")
    op.drop_index("ix_priority_zones_kind", table_name="priority_zones")
    op.drop_index("ix_priority_zones_bbox", table_name="priority_zones")
    op.drop_table("priority_zones")
