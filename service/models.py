"""ORM models (SQLAlchemy 2). Geometries are shapely objects in EPSG:4326 (see :mod:`service.geometry`).

Every spatial table carries ``min_x … max_y`` bbox columns in degrees, indexed, kept in step with the
geometry by :func:`set_geometry`. Rows that clients edit concurrently carry ``version`` (their ETag).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from service.geometry import GeometryType, bbox_of

__all__ = [
    "Base",
    "District",
    "User",
    "ApiToken",
    "Project",
    "PriorityZone",
    "ImportReport",
    "Imagery",
    "Scan",
    "Patch",
    "PatchMatch",
    "Review",
    "AuditEvent",
    "NightlyRun",
    "NightlyJob",
    "ScanUnit",
    "NightlyLock",
    "user_districts",
    "patch_zones",
    "set_geometry",
    "utcnow",
]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class _BBox:
    """Bbox columns in degrees (EPSG:4326) mirroring the geometry, for index-backed bbox filters."""

    min_x: Mapped[float | None] = mapped_column(Float)
    min_y: Mapped[float | None] = mapped_column(Float)
    max_x: Mapped[float | None] = mapped_column(Float)
    max_y: Mapped[float | None] = mapped_column(Float)


def set_geometry(obj: Any, geom: BaseGeometry | None, attr: str = "geometry") -> None:
    """Set ``obj.<attr>`` and its bbox columns together."""
    setattr(obj, attr, geom)
    box = (
        bbox_of(geom) if geom is not None and not geom.is_empty else dict.fromkeys(("min_x", "min_y", "max_x", "max_y"))
    )
    for key, value in box.items():
        setattr(obj, key, value)


user_districts = Table(
    "user_districts",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("district_code", ForeignKey("districts.code", ondelete="CASCADE"), primary_key=True),
)


class District(_BBox, Base):
    """A 区/县 (or the city), e.g. 蓟州区 ``120225``; boundary optional."""

    __tablename__ = "districts"
    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    geometry: Mapped[BaseGeometry | None] = mapped_column(GeometryType)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    all_districts: Mapped[bool] = mapped_column(Boolean, default=False)  # the city sees all
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    districts: Mapped[list[District]] = relationship(secondary=user_districts, lazy="selectin")
    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", cascade="all, delete-orphan")

    @property
    def district_codes(self) -> list[str]:
        return sorted(d.code for d in self.districts)


class ApiToken(Base):
    """An API token, stored as its SHA-256 (tokens are 256-bit random, so a slow hash adds nothing)."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # shown in listings to tell tokens apart
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # migration 0004
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # None: never (0004)
    user: Mapped[User] = relationship(back_populates="tokens", lazy="joined")


class Project(_BBox, Base):
    """An approved project of the supervision list (监管清单) with its responsibility area (防治责任范围)."""

    __tablename__ = "projects"
    __table_args__ = (Index("ix_projects_bbox", "min_x", "max_x", "min_y", "max_y"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(100), unique=True)  # 项目代码
    name: Mapped[str] = mapped_column(String(300), index=True)  # 项目名称
    builder: Mapped[str | None] = mapped_column(String(300), index=True)  # 建设单位
    industry: Mapped[str | None] = mapped_column(String(100))  # 行业类别
    approval_authority: Mapped[str | None] = mapped_column(String(200))  # 审批机关
    approval_number: Mapped[str | None] = mapped_column(String(200))  # 批复文号
    approved_on: Mapped[dt.date | None] = mapped_column(Date)  # 批复时间
    declared_area_hm2: Mapped[float | None] = mapped_column(Float)  # 防治责任范围面积 as declared
    approval_level: Mapped[str | None] = mapped_column(String(20))  # 立项级别
    project_category: Mapped[str | None] = mapped_column(String(20))  # 项目类别
    project_nature: Mapped[str | None] = mapped_column(String(20))  # 项目性质
    construction_state: Mapped[str | None] = mapped_column(String(20))  # 建设状态
    vector_type: Mapped[str] = mapped_column(String(20), default="responsibility")  # 矢量化类型
    district_code: Mapped[str | None] = mapped_column(ForeignKey("districts.code"), index=True)
    area_m2: Mapped[float] = mapped_column(Float, default=0.0)  # computed from the geometry
    geometry: Mapped[BaseGeometry] = mapped_column(GeometryType)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)  # unmapped source columns
    import_id: Mapped[int | None] = mapped_column(ForeignKey("import_reports.id", ondelete="SET NULL"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    __mapper_args__ = {"version_id_col": version}


class PriorityZone(_BBox, Base):
    """A priority zone (重点监管区域: water source, ecological red line, steep slope …); patches inside rank higher.

    ``weight`` is added to the priority of every patch intersecting the zone (the largest weight when a
    patch lies in several zones; see :mod:`service.zones`). Imports update a zone by ``(name, kind)``.
    """

    __tablename__ = "priority_zones"
    __table_args__ = (
        Index("ix_priority_zones_bbox", "min_x", "max_x", "min_y", "max_y"),
        UniqueConstraint("name", "kind", name="uq_priority_zones_name_kind"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(300))  # 名称, e.g. 于桥水库饮用水水源一级保护区
    kind: Mapped[str] = mapped_column(String(30), index=True)  # service.vocab.ZoneKind
    weight: Mapped[int] = mapped_column(Integer)  # priority added to patches inside
    district_code: Mapped[str | None] = mapped_column(ForeignKey("districts.code"), index=True)
    area_m2: Mapped[float] = mapped_column(Float, default=0.0)  # computed from the geometry
    geometry: Mapped[BaseGeometry] = mapped_column(GeometryType)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)  # unmapped source columns
    source_file: Mapped[str | None] = mapped_column(String(300))
    import_id: Mapped[int | None] = mapped_column(ForeignKey("import_reports.id", ondelete="SET NULL"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    __mapper_args__ = {"version_id_col": version}


#: Which priority zones a patch intersects (kept by service.zones; migration 0005).
patch_zones = Table(
    "patch_zones",
    Base.metadata,
    Column("patch_id", ForeignKey("patches.id", ondelete="CASCADE"), primary_key=True),
    Column("zone_id", ForeignKey("priority_zones.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class ImportReport(Base):
    """What one import did (a project list or priority zones): counts and per-row errors/warnings
    ``{row, code, reason}``."""

    __tablename__ = "import_reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(20), default="projects", server_default="projects")  # or zones
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(300))
    format: Mapped[str] = mapped_column(String(20))
    source_crs: Mapped[str | None] = mapped_column(String(100))
    encoding: Mapped[str | None] = mapped_column(String(20))
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    repaired: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    field_mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)
    errors: Mapped[list[Any]] = mapped_column(default=list)
    warnings: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Imagery(_BBox, Base):
    """One uploaded GeoTIFF tile (one date, 时相); ``footprint`` in EPSG:4326."""

    __tablename__ = "imagery"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    filename: Mapped[str] = mapped_column(String(300))
    path: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    acquired_on: Mapped[dt.date] = mapped_column(Date, index=True)
    sensor: Mapped[str | None] = mapped_column(String(50))
    district_code: Mapped[str | None] = mapped_column(ForeignKey("districts.code"), index=True)
    crs: Mapped[str | None] = mapped_column(String(100))
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    band_count: Mapped[int] = mapped_column(Integer, default=0)
    resolution_m: Mapped[float | None] = mapped_column(Float)
    footprint: Mapped[BaseGeometry | None] = mapped_column(GeometryType)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Scan(Base):
    """A detection run over a before/after pair; runs in the background and survives restarts."""

    __tablename__ = "scans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    before_imagery_id: Mapped[int | None] = mapped_column(ForeignKey("imagery.id"))
    after_imagery_id: Mapped[int] = mapped_column(ForeignKey("imagery.id"))
    district_code: Mapped[str | None] = mapped_column(ForeignKey("districts.code"), index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(100))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    patch_count: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Worker bookkeeping (migration 0002): who runs it, when it last said so, how many tries. A running scan
    # whose heartbeat went stale belongs to a dead process and is queued again (see service.scan_worker).
    worker: Mapped[str | None] = mapped_column(String(100))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Patch(_BBox, Base):
    """A disturbance patch (扰动图斑) with its compliance judgement and review state."""

    __tablename__ = "patches"
    __table_args__ = (Index("ix_patches_bbox", "min_x", "max_x", "min_y", "max_y"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patch_code: Mapped[str] = mapped_column(String(64), unique=True)  # e.g. 2024_120225_00017
    scan_id: Mapped[int | None] = mapped_column(ForeignKey("scans.id", ondelete="SET NULL"), index=True)
    # district_code, category, review_status, after_date, priority: indexed by the list indexes below (0006)
    district_code: Mapped[str | None] = mapped_column(ForeignKey("districts.code"))
    geometry: Mapped[BaseGeometry] = mapped_column(GeometryType)
    area_m2: Mapped[float] = mapped_column(Float, index=True)
    area_mu: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    before_date: Mapped[dt.date | None] = mapped_column(Date)
    after_date: Mapped[dt.date | None] = mapped_column(Date)
    source_before: Mapped[str | None] = mapped_column(String(300))
    source_after: Mapped[str | None] = mapped_column(String(300))
    confidence: Mapped[float | None] = mapped_column(Float)
    conf_max: Mapped[float | None] = mapped_column(Float)
    model: Mapped[str | None] = mapped_column(String(100))
    change_type: Mapped[str | None] = mapped_column(String(30))  # 新增 / 续建（范围扩大）…
    disturbance_type: Mapped[str | None] = mapped_column(String(30))  # 弃土（渣）场 …
    previous_patch_id: Mapped[int | None] = mapped_column(ForeignKey("patches.id", ondelete="SET NULL"))
    # Compliance judgement (machine): see service.matching
    category: Mapped[str | None] = mapped_column(String(40))
    category_reason: Mapped[str | None] = mapped_column(Text)
    overlap_area_m2: Mapped[float | None] = mapped_column(Float)
    outside_area_m2: Mapped[float | None] = mapped_column(Float)
    outside_share: Mapped[float | None] = mapped_column(Float)
    nearest_project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"))
    nearest_distance_m: Mapped[float | None] = mapped_column(Float)
    matched_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    # The priority zone whose weight is in ``priority``: a cache of the top zone in patch_zones (which holds
    # all of them, with foreign keys), kept by service.zones; no foreign key, see migration 0005.
    priority_zone_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # Review (复核)
    review_status: Mapped[str] = mapped_column(String(16), default="unreviewed")
    verdict: Mapped[str | None] = mapped_column(String(30), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    matches: Mapped[list[PatchMatch]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="PatchMatch.overlap_area_m2.desc()"
    )
    __mapper_args__ = {"version_id_col": version}


# GET /patches order (priority DESC, area_m2 DESC, id) alone and after the common filters; see migration 0006
_LIST_ORDER = (Patch.priority.desc(), Patch.area_m2.desc(), Patch.id)
Index("ix_patches_list_order", *_LIST_ORDER)
Index("ix_patches_district_list_order", Patch.district_code, *_LIST_ORDER)
Index("ix_patches_district_category_list_order", Patch.district_code, Patch.category, *_LIST_ORDER)
Index("ix_patches_district_status_list_order", Patch.district_code, Patch.review_status, *_LIST_ORDER)
Index("ix_patches_category_list_order", Patch.category, *_LIST_ORDER)
Index("ix_patches_status_list_order", Patch.review_status, *_LIST_ORDER)
Index("ix_patches_after_date_list_order", Patch.after_date, *_LIST_ORDER)


class PatchMatch(Base):
    """A project a patch overlaps or lies near, with the overlap figures."""

    __tablename__ = "patch_matches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patch_id: Mapped[int] = mapped_column(ForeignKey("patches.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    overlap_area_m2: Mapped[float] = mapped_column(Float, default=0.0)
    overlap_share: Mapped[float] = mapped_column(Float, default=0.0)  # of the patch area
    distance_m: Mapped[float] = mapped_column(Float, default=0.0)


class Review(Base):
    """One review action on a patch: a verdict with note and evidence, by an inspector."""

    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patch_id: Mapped[int] = mapped_column(ForeignKey("patches.id", ondelete="CASCADE"), index=True)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    verdict: Mapped[str] = mapped_column(String(30))
    note: Mapped[str | None] = mapped_column(Text)
    photos: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEvent(Base):
    """Who changed what, when, from what to what, and why. ``user_id`` is None for the system."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_entity", "entity_type", "entity_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    entity_type: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(40))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)


# --- the nightly batch scan (service.nightly; migration 0003) ----------------------------------------------
class NightlyRun(Base):
    """One run of ``soilwatch scan``: resumed by the next start while its status is ``running``."""

    __tablename__ = "nightly_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    holder: Mapped[str | None] = mapped_column(String(100))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    report_dir: Mapped[str | None] = mapped_column(String(1000))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class NightlyJob(Base):
    """One before/after pair of a nightly run (each side one scene or a mosaic of scenes of one date).

    ``key`` identifies the pair (imagery ids, model, unit size), so planning it again finds this row.
    ``plan`` is the pickled :class:`detector.pipeline.DetectionPlan`, kept so that a resumed run cuts
    exactly the same units. ``status``: planned → done (patches written with ``scan_id``) | failed | baseline.
    """

    __tablename__ = "nightly_jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("nightly_runs.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="planned", index=True)
    scan_id: Mapped[int | None] = mapped_column(ForeignKey("scans.id", ondelete="SET NULL"))
    after_date: Mapped[dt.date] = mapped_column(Date)
    before_date: Mapped[dt.date | None] = mapped_column(Date)
    after_ids: Mapped[list[Any]] = mapped_column(default=list)
    before_ids: Mapped[list[Any]] = mapped_column(default=list)
    after_path: Mapped[str] = mapped_column(String(1000))
    before_path: Mapped[str | None] = mapped_column(String(1000))
    plan: Mapped[bytes | None] = mapped_column(LargeBinary)
    units_total: Mapped[int] = mapped_column(Integer, default=0)
    units_failed: Mapped[int] = mapped_column(Integer, default=0)
    area_km2: Mapped[float] = mapped_column(Float, default=0.0)
    patch_count: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ScanUnit(Base):
    """A finished work unit of a nightly job: its fragments (zlib-compressed JSON) or why it failed.

    Committed as soon as the unit finishes, so a killed run redoes only the units missing here.
    """

    __tablename__ = "scan_units"
    __table_args__ = (UniqueConstraint("job_id", "col_off", "row_off", name="uq_scan_units_job_cell"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("nightly_jobs.id", ondelete="CASCADE"), index=True)
    col_off: Mapped[int] = mapped_column(Integer)
    row_off: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    n_fragments: Mapped[int] = mapped_column(Integer, default=0)
    fragments: Mapped[bytes | None] = mapped_column(LargeBinary)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    worker: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class NightlyLock(Base):
    """The lock that keeps two nightly scans apart: one row while a scan runs; stale when its heartbeat stops."""

    __tablename__ = "nightly_locks"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    acquired_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
