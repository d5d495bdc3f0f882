"""Pydantic schemas of the API: ``XCreate`` (POST body), ``XUpdate`` (PATCH), ``XPublic`` (one), ``XsPublic`` (page)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "HealthPublic",
    "DistrictPublic",
    "DistrictsPublic",
    "UserPublic",
    "ProjectPublic",
    "ProjectsPublic",
    "ProjectUpdate",
    "ImportIssue",
    "ImportReportPublic",
    "PatchMatchPublic",
    "PatchPublic",
    "PatchesPublic",
    "PatchUpdate",
    "ReviewCreate",
    "ReviewPublic",
    "AuditEventPublic",
    "HistoryPublic",
    "ImageryPublic",
    "ImageriesPublic",
]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class HealthPublic(BaseModel):
    status: str = Field(examples=["ok"])
    database: str = Field(examples=["sqlite", "postgresql"])
    version: str


class DistrictPublic(_Out):
    code: str = Field(examples=["120225"])
    name: str = Field(examples=["蓟州区"])


class DistrictsPublic(BaseModel):
    data: list[DistrictPublic]
    count: int


class UserPublic(_Out):
    id: int
    name: str
    role: str = Field(examples=["supervisor"])
    all_districts: bool = Field(description="City-wide user: sees every district.")
    districts: list[DistrictPublic]


class ProjectPublic(_Out):
    """An approved project; ``geometry`` is GeoJSON in EPSG:4326 (lon, lat)."""

    id: int
    code: str = Field(description="项目代码")
    name: str = Field(description="项目名称")
    builder: str | None = Field(None, description="建设单位")
    industry: str | None = Field(None, description="行业类别")
    approval_authority: str | None = Field(None, description="审批机关")
    approval_number: str | None = Field(None, description="批复文号")
    approved_on: dt.date | None = Field(None, description="批复时间")
    declared_area_hm2: float | None = Field(None, description="防治责任范围面积 as declared, hectares")
    approval_level: str | None = Field(None, description="立项级别")
    project_category: str | None = Field(None, description="项目类别")
    project_nature: str | None = Field(None, description="项目性质")
    construction_state: str | None = Field(None, description="建设状态")
    vector_type: str = Field(description="responsibility (防治责任范围), schematic (示意性范围) or point_buffer")
    district_code: str | None
    area_m2: float = Field(description="Area of the geometry, m² (geodesic)")
    bbox: list[float] | None = Field(None, description="[min_lon, min_lat, max_lon, max_lat]")
    geometry: dict[str, Any] | None = Field(None, description="GeoJSON geometry, EPSG:4326")
    attributes: dict[str, Any] = Field(default_factory=dict, description="Unmapped columns of the source file")
    import_id: int | None = None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class ProjectsPublic(BaseModel):
    data: list[ProjectPublic]
    count: int = Field(description="Total matching rows (all pages)")
    offset: int
    limit: int


class ProjectUpdate(BaseModel):
    """Fields a supervisor may change by hand; the geometry is changed by re-importing."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=300)
    builder: str | None = Field(None, max_length=300)
    industry: str | None = Field(None, max_length=100)
    approval_authority: str | None = Field(None, max_length=200)
    approval_number: str | None = Field(None, max_length=200)
    approved_on: dt.date | None = None
    construction_state: str | None = Field(None, max_length=20)
    vector_type: str | None = Field(None, pattern="^(responsibility|schematic|point_buffer)$")
    district_code: str | None = None


class ImportIssue(BaseModel):
    row: int | None = Field(description="1-based row (feature) number in the source file; null for the whole file")
    code: str | None = Field(None, description="项目代码 of the row, when known")
    reason: str


class ImportReportPublic(_Out):
    id: int
    filename: str
    format: str
    source_crs: str | None
    encoding: str | None
    rows_total: int
    created: int
    updated: int
    unchanged: int
    repaired: int
    rejected: int
    field_mapping: dict[str, str] = Field(description="source column → project attribute")
    errors: list[ImportIssue] = Field(description="Rejected rows with the reason")
    warnings: list[ImportIssue] = Field(description="Rows imported with a repair or a guess")
    created_at: dt.datetime


class PatchMatchPublic(_Out):
    project_id: int
    project_code: str | None = None
    project_name: str | None = None
    overlap_area_m2: float
    overlap_share: float = Field(description="Share of the patch area inside this project")


class PatchPublic(_Out):
    """A disturbance patch (扰动图斑); ``geometry`` is GeoJSON in EPSG:4326. Machine categories are 疑似 (suspected)."""

    id: int
    patch_code: str = Field(examples=["2024_120225_000017"])
    scan_id: int | None
    district_code: str | None
    area_m2: float
    area_mu: float = Field(description="亩 (1 亩 = 666.67 m²)")
    lon: float
    lat: float
    before_date: dt.date | None
    after_date: dt.date | None
    confidence: float | None
    model: str | None
    change_type: str | None = Field(description="新增 / 续建（范围扩大）…")
    disturbance_type: str | None
    previous_patch_id: int | None = Field(description="The same site found by an earlier scan")
    category: str | None = Field(description="compliant, suspected_unapproved, suspected_out_of_bounds, …")
    category_label: str | None = Field(None, description="合规, 疑似未批先建, 疑似超出防治责任范围, 疑似建设地点变更")
    category_reason: str | None
    overlap_area_m2: float | None
    outside_area_m2: float | None
    outside_share: float | None
    nearest_project_id: int | None
    nearest_distance_m: float | None
    priority: int
    review_status: str
    verdict: str | None
    verdict_label: str | None = None
    assignee_id: int | None
    version: int
    bbox: list[float] | None = None
    geometry: dict[str, Any] | None = None
    matches: list[PatchMatchPublic] = Field(default_factory=list)
    created_at: dt.datetime
    updated_at: dt.datetime


class PatchesPublic(BaseModel):
    data: list[PatchPublic]
    count: int
    offset: int
    limit: int


class PatchUpdate(BaseModel):
    """Supervisor actions: assign to an inspector, close (销号) after rectification."""

    model_config = ConfigDict(extra="forbid")
    assignee_id: int | None = None
    review_status: str | None = Field(None, pattern="^(unreviewed|assigned|reviewed|closed)$")
    disturbance_type: str | None = Field(None, max_length=30)


class ReviewCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: str = Field(pattern="^(confirmed_violation|compliant|not_construction|false_detection)$",
                         description="confirmed_violation 违法违规, compliant 合规, not_construction 非生产建设项目, "
                         "false_detection 误判")  # fmt: skip
    note: str | None = Field(None, max_length=5000)
    photos: list[str] = Field(default_factory=list, description="References to field photos / UAV panoramas")


class ReviewPublic(_Out):
    id: int
    patch_id: int
    reviewer_id: int | None
    verdict: str
    note: str | None
    photos: list[str]
    created_at: dt.datetime


class AuditEventPublic(_Out):
    id: int
    at: dt.datetime
    user_id: int | None = Field(description="null: the system (matching, scans)")
    entity_type: str
    entity_id: int
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None


class HistoryPublic(BaseModel):
    data: list[AuditEventPublic]
    reviews: list[ReviewPublic]


class ImageryPublic(_Out):
    """An uploaded tile; ``footprint`` is GeoJSON in EPSG:4326."""

    id: int
    filename: str
    sha256: str
    size_bytes: int
    acquired_on: dt.date
    sensor: str | None
    district_code: str | None
    crs: str | None
    width: int
    height: int
    band_count: int
    resolution_m: float | None
    footprint: dict[str, Any] | None
    created_at: dt.datetime


class ImageriesPublic(BaseModel):
    data: list[ImageryPublic]
    count: int
