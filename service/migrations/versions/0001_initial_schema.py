"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 15:56:05.344255
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.geometry

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


_SPATIAL = [("districts", "geometry"), ("projects", "geometry"), ("imagery", "footprint"), ("patches", "geometry")]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "districts",
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("geometry", service.geometry.GeometryType(), nullable=True),
        sa.Column("min_x", sa.Float(), nullable=True),
        sa.Column("min_y", sa.Float(), nullable=True),
        sa.Column("max_x", sa.Float(), nullable=True),
        sa.Column("max_y", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("all_districts", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("entity_type", sa.String(length=30), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_entity", ["entity_type", "entity_id"], unique=False)

    op.create_table(
        "imagery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("acquired_on", sa.Date(), nullable=False),
        sa.Column("sensor", sa.String(length=50), nullable=True),
        sa.Column("district_code", sa.String(length=12), nullable=True),
        sa.Column("crs", sa.String(length=100), nullable=True),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("band_count", sa.Integer(), nullable=False),
        sa.Column("resolution_m", sa.Float(), nullable=True),
        sa.Column("footprint", service.geometry.GeometryType(), nullable=True),
        sa.Column("uploaded_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("min_x", sa.Float(), nullable=True),
        sa.Column("min_y", sa.Float(), nullable=True),
        sa.Column("max_x", sa.Float(), nullable=True),
        sa.Column("max_y", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["district_code"],
            ["districts.code"],
        ),
        sa.ForeignKeyConstraint(["uploaded_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sha256"),
    )
    with op.batch_alter_table("imagery", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_imagery_acquired_on"), ["acquired_on"], unique=False)
        batch_op.create_index(batch_op.f("ix_imagery_district_code"), ["district_code"], unique=False)

    op.create_table(
        "import_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("filename", sa.String(length=300), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("source_crs", sa.String(length=100), nullable=True),
        sa.Column("encoding", sa.String(length=20), nullable=True),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("repaired", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("field_mapping", sa.JSON(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "user_districts",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("district_code", sa.String(length=12), nullable=False),
        sa.ForeignKeyConstraint(["district_code"], ["districts.code"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "district_code"),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("builder", sa.String(length=300), nullable=True),
        sa.Column("industry", sa.String(length=100), nullable=True),
        sa.Column("approval_authority", sa.String(length=200), nullable=True),
        sa.Column("approval_number", sa.String(length=200), nullable=True),
        sa.Column("approved_on", sa.Date(), nullable=True),
        sa.Column("declared_area_hm2", sa.Float(), nullable=True),
        sa.Column("approval_level", sa.String(length=20), nullable=True),
        sa.Column("project_category", sa.String(length=20), nullable=True),
        sa.Column("project_nature", sa.String(length=20), nullable=True),
        sa.Column("construction_state", sa.String(length=20), nullable=True),
        sa.Column("vector_type", sa.String(length=20), nullable=False),
        sa.Column("district_code", sa.String(length=12), nullable=True),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.Column("geometry", service.geometry.GeometryType(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("min_x", sa.Float(), nullable=True),
        sa.Column("min_y", sa.Float(), nullable=True),
        sa.Column("max_x", sa.Float(), nullable=True),
        sa.Column("max_y", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["district_code"],
            ["districts.code"],
        ),
        sa.ForeignKeyConstraint(["import_id"], ["import_reports.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_index("ix_projects_bbox", ["min_x", "max_x", "min_y", "max_y"], unique=False)
        batch_op.create_index(batch_op.f("ix_projects_builder"), ["builder"], unique=False)
        batch_op.create_index(batch_op.f("ix_projects_district_code"), ["district_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_projects_name"), ["name"], unique=False)

    op.create_table(
        "scans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("before_imagery_id", sa.Integer(), nullable=True),
        sa.Column("after_imagery_id", sa.Integer(), nullable=False),
        sa.Column("district_code", sa.String(length=12), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("patch_count", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["after_imagery_id"],
            ["imagery.id"],
        ),
        sa.ForeignKeyConstraint(
            ["before_imagery_id"],
            ["imagery.id"],
        ),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["district_code"],
            ["districts.code"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("scans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scans_district_code"), ["district_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_scans_status"), ["status"], unique=False)

    op.create_table(
        "patches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patch_code", sa.String(length=64), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=True),
        sa.Column("district_code", sa.String(length=12), nullable=True),
        sa.Column("geometry", service.geometry.GeometryType(), nullable=False),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.Column("area_mu", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("before_date", sa.Date(), nullable=True),
        sa.Column("after_date", sa.Date(), nullable=True),
        sa.Column("source_before", sa.String(length=300), nullable=True),
        sa.Column("source_after", sa.String(length=300), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("conf_max", sa.Float(), nullable=True),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("change_type", sa.String(length=30), nullable=True),
        sa.Column("disturbance_type", sa.String(length=30), nullable=True),
        sa.Column("previous_patch_id", sa.Integer(), nullable=True),
        sa.Column("category", sa.String(length=40), nullable=True),
        sa.Column("category_reason", sa.Text(), nullable=True),
        sa.Column("overlap_area_m2", sa.Float(), nullable=True),
        sa.Column("outside_area_m2", sa.Float(), nullable=True),
        sa.Column("outside_share", sa.Float(), nullable=True),
        sa.Column("nearest_project_id", sa.Integer(), nullable=True),
        sa.Column("nearest_distance_m", sa.Float(), nullable=True),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("review_status", sa.String(length=16), nullable=False),
        sa.Column("verdict", sa.String(length=30), nullable=True),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("min_x", sa.Float(), nullable=True),
        sa.Column("min_y", sa.Float(), nullable=True),
        sa.Column("max_x", sa.Float(), nullable=True),
        sa.Column("max_y", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["assignee_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["district_code"],
            ["districts.code"],
        ),
        sa.ForeignKeyConstraint(["nearest_project_id"], ["projects.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["previous_patch_id"], ["patches.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["scan_id"], ["scans.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("patch_code"),
    )
    with op.batch_alter_table("patches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patches_after_date"), ["after_date"], unique=False)
        batch_op.create_index(batch_op.f("ix_patches_area_m2"), ["area_m2"], unique=False)
        batch_op.create_index(batch_op.f("ix_patches_assignee_id"), ["assignee_id"], unique=False)
        batch_op.create_index("ix_patches_bbox", ["min_x", "max_x", "min_y", "max_y"], unique=False)
        batch_op.create_index(batch_op.f("ix_patches_category"), ["category"], unique=False)
        batch_op.create_index(batch_op.f("ix_patches_district_code"), ["district_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_patches_priority"), ["priority"], unique=False)
        batch_op.create_index(batch_op.f("ix_patches_review_status"), ["review_status"], unique=False)
        batch_op.create_index(batch_op.f("ix_patches_scan_id"), ["scan_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_patches_verdict"), ["verdict"], unique=False)

    op.create_table(
        "patch_matches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patch_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("overlap_area_m2", sa.Float(), nullable=False),
        sa.Column("overlap_share", sa.Float(), nullable=False),
        sa.Column("distance_m", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["patch_id"], ["patches.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("patch_matches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patch_matches_patch_id"), ["patch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_patch_matches_project_id"), ["project_id"], unique=False)

    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patch_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=True),
        sa.Column("verdict", sa.String(length=30), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("photos", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patch_id"], ["patches.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["reviewer_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reviews_patch_id"), ["patch_id"], unique=False)

    if postgres:  # real spatial indexes for SQL/GIS users; the service itself filters on the bbox columns
        for table, column in _SPATIAL:
            op.execute(f"CREATE INDEX ix_{table}_{column}_gist ON {table} USING gist ({column})")


def downgrade() -> None:
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reviews_patch_id"))

    op.drop_table("reviews")
    with op.batch_alter_table("patch_matches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patch_matches_project_id"))
        batch_op.drop_index(batch_op.f("ix_patch_matches_patch_id"))

    op.drop_table("patch_matches")
    with op.batch_alter_table("patches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patches_verdict"))
        batch_op.drop_index(batch_op.f("ix_patches_scan_id"))
        batch_op.drop_index(batch_op.f("ix_patches_review_status"))
        batch_op.drop_index(batch_op.f("ix_patches_priority"))
        batch_op.drop_index(batch_op.f("ix_patches_district_code"))
        batch_op.drop_index(batch_op.f("ix_patches_category"))
        batch_op.drop_index("ix_patches_bbox")
        batch_op.drop_index(batch_op.f("ix_patches_assignee_id"))
        batch_op.drop_index(batch_op.f("ix_patches_area_m2"))
        batch_op.drop_index(batch_op.f("ix_patches_after_date"))

    op.drop_table("patches")
    with op.batch_alter_table("scans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scans_status"))
        batch_op.drop_index(batch_op.f("ix_scans_district_code"))

    op.drop_table("scans")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_projects_name"))
        batch_op.drop_index(batch_op.f("ix_projects_district_code"))
        batch_op.drop_index(batch_op.f("ix_projects_builder"))
        batch_op.drop_index("ix_projects_bbox")

    op.drop_table("projects")
    op.drop_table("user_districts")
    op.drop_table("import_reports")
    with op.batch_alter_table("imagery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_imagery_district_code"))
        batch_op.drop_index(batch_op.f("ix_imagery_acquired_on"))

    op.drop_table("imagery")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entity")

    op.drop_table("audit_events")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_table("districts")
