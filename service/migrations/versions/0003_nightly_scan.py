"""nightly batch scan: runs, jobs, finished work units, lock

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nightly_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("report_dir", sa.String(length=1000), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_nightly_runs_status", "nightly_runs", ["status"])
    op.create_table(
        "nightly_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=True),
        sa.Column("after_date", sa.Date(), nullable=False),
        sa.Column("before_date", sa.Date(), nullable=True),
        sa.Column("after_ids", sa.JSON(), nullable=False),
        sa.Column("before_ids", sa.JSON(), nullable=False),
        sa.Column("after_path", sa.String(length=1000), nullable=False),
        sa.Column("before_path", sa.String(length=1000), nullable=True),
        sa.Column("plan", sa.LargeBinary(), nullable=True),
        sa.Column("units_total", sa.Integer(), nullable=False),
        sa.Column("units_failed", sa.Integer(), nullable=False),
        sa.Column("area_km2", sa.Float(), nullable=False),
        sa.Column("patch_count", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["nightly_runs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["scan_id"], ["scans.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_nightly_jobs_run_id", "nightly_jobs", ["run_id"])
    op.create_index("ix_nightly_jobs_status", "nightly_jobs", ["status"])
    op.create_table(
        "scan_units",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("col_off", sa.Integer(), nullable=False),
        sa.Column("row_off", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("n_fragments", sa.Integer(), nullable=False),
        sa.Column("fragments", sa.LargeBinary(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["nightly_jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "col_off", "row_off", name="uq_scan_units_job_cell"),
    )
    op.create_index("ix_scan_units_job_id", "scan_units", ["job_id"])
    op.create_table(
        "nightly_locks",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("nightly_locks")
    op.drop_index("ix_scan_units_job_id", table_name="scan_units")
    op.drop_table("scan_units")
    op.drop_index("ix_nightly_jobs_status", table_name="nightly_jobs")
    op.drop_index("ix_nightly_jobs_run_id", table_name="nightly_jobs")
    op.drop_table("nightly_jobs")
    op.drop_index("ix_nightly_runs_status", table_name="nightly_runs")
    op.drop_table("nightly_runs")
