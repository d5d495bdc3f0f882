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
