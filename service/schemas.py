"""Pydantic schemas of the API: ``XCreate`` (POST body), ``XUpdate`` (PATCH), ``XPublic`` (one), ``XsPublic`` (page)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.vocab import ZoneKind

__all__ = [
    "PublicModel",
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
    "PatchZonePublic",
    "PatchPublic",
    "PatchesPublic",
    "PatchUpdate",
    "ReviewCreate",
    "ReviewPublic",
    "AuditEventPublic",
    "HistoryPublic",
    "ImageryPublic",
    "ImageriesPublic",
    "ScanCreate",
    "ScanPublic",
    "ScansPublic",
]


class PublicModel(BaseModel):
    """Base of the answers read from rows: built from attributes; times always carry their UTC offset."""

    model_config = ConfigDict(from_attributes=True)

    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        """Times are UTC; SQLite drops the offset, so a naive time read from it gets UTC back (an RFC 3339
        ``date-time``, as the schema promises)."""
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


_Out = PublicModel


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
    # name and vector_type cannot be emptied: leave them out to keep them (null answers 422, not a DB conflict)
    name: str = Field(None, min_length=1, max_length=300)
    builder: str | None = Field(None, max_length=300)
    industry: str | None = Field(None, max_length=100)
    approval_authority: str | None = Field(None, max_length=200)
    approval_number: str | None = Field(None, max_length=200)
    approved_on: dt.date | None = None
    construction_state: str | None = Field(None, max_length=20)
    vector_type: str = Field(None, pattern="^(responsibility|schematic|point_buffer)$")
    district_code: str | None = None


class ImportIssue(BaseModel):
    row: int | None = Field(description="1-based row (feature) number in the source file; null for the whole file")
    code: str | None = Field(None, description="项目代码 of the row (zone imports: the zone's 名称), when known")
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


class PatchZonePublic(_Out):
    """A priority zone (重点监管区域) a patch lies in."""

    id: int
    name: str
    kind: str = Field(examples=["water_source"])
    kind_label: str | None = Field(None, examples=["水源保护区"])
    weight: int = Field(description="Priority this zone adds to the patches inside it")


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
    priority: int = Field(description="Category rank (30 疑似未批先建 … 0) plus the heaviest priority zone's weight")
    priority_zone_id: int | None = Field(None, description="The priority zone whose weight is in priority")
    priority_zones: list[PatchZonePublic] = Field(
        default_factory=list, description="Every priority zone the patch lies in, heaviest first (one patch only)"
    )
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
    """A page of patches. ``count`` is exact while ``count_exact``; past 10,000 matches it is 10,000 (at
    least that many) unless the request asked for ``exact_count``."""

    data: list[PatchPublic]
    count: int = Field(description="Patches matching the filters; a lower bound when count_exact is false")
    count_exact: bool = Field(True, description="False when count stopped at the cap (ask with exact_count=true)")
    offset: int
    limit: int
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page; null if this page is not full")


class PatchUpdate(BaseModel):
    """Supervisor actions: assign to an inspector, close (销号) after rectification."""

    model_config = ConfigDict(extra="forbid")
    assignee_id: int | None = None
    review_status: str = Field(None, pattern="^(unreviewed|assigned|reviewed|closed)$")  # never null
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


class ScanCreate(BaseModel):
    """What to compare: two tiles; or an area with two dates; or ``{"mode": "latest"}`` (optionally with an area).

    With dates, the tiles covering the area whose acquisition dates are nearest to them are used; with
    ``latest``, the newest tile and the newest older one overlapping it.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"before_imagery_id": 1, "after_imagery_id": 2},
                {"district_code": "120225", "before_date": "2023-06-15", "after_date": "2024-06-15"},
                {"bbox": [117.14, 40.05, 117.16, 40.07], "before_date": "2023-06-01", "after_date": "2024-06-01"},
                {"mode": "latest", "district_code": "120225"},
            ]
        },
    )
    before_imagery_id: int | None = Field(None, ge=1)
    after_imagery_id: int | None = Field(None, ge=1)
    district_code: str | None = Field(None, description="Limit the scan to this district's boundary")
    bbox: list[float] | None = Field(
        None, min_length=4, max_length=4, description="[min_lon, min_lat, max_lon, max_lat]"
    )
    before_date: dt.date | None = None
    after_date: dt.date | None = None
    mode: Literal["latest"] | None = Field(None, description="latest: the newest imagery against the previous date")


class ScanPublic(_Out):
    """A scan (检测任务). ``status``: queued, running, succeeded, failed or cancelled; ``progress`` 0–1."""

    id: int
    status: str = Field(examples=["running"])
    progress: float = Field(description="0–1; detection is the first 90 %, storing and matching the rest")
    message: str | None = Field(None, description="What happened: the error of a failed scan, the counts of a done one")
    before_imagery_id: int | None
    after_imagery_id: int
    before_date: dt.date | None = None
    after_date: dt.date | None = None
    district_code: str | None
    mode: str | None = Field(None, description="pair, dates or latest")
    bbox: list[float] | None = None
    model: str | None
    patch_count: int
    counts: dict[str, int] = Field(default_factory=dict, description="Patches of this scan per category")
    cancel_requested: bool
    attempts: int = Field(description="Runs started (a run interrupted by a restart is run again)")
    created_by: int | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class ScansPublic(BaseModel):
    data: list[ScanPublic]
    count: int
    offset: int
    limit: int


# --- Statistics, builder credit list (exports stream files and need no schema) ---------------------------

__all__ += [
    "StatsCategoryCount",
    "StatsVerdictCount",
    "StatsRowPublic",
    "StatsPublic",
    "CreditRulesPublic",
    "CreditCasePublic",
    "CreditEntryPublic",
    "CreditListPublic",
]


class StatsCategoryCount(BaseModel):
    category: str = Field(examples=["suspected_unapproved"])
    label: str | None = Field(None, examples=["疑似未批先建"])
    count: int
    area_m2: float


class StatsVerdictCount(BaseModel):
    verdict: str = Field(examples=["confirmed_violation"])
    label: str | None = Field(None, examples=["违法违规"])
    count: int


class StatsRowPublic(BaseModel):
    """Counts of one group; the keys not grouped by are null. Areas in m² and 亩 (1 亩 = 666.67 m²)."""

    district_code: str | None = Field(None, examples=["120225"])
    district_name: str | None = Field(None, examples=["蓟州区"])
    month: str | None = Field(None, description="Month of the after-image date", examples=["2024-05"])
    model: str | None = Field(None, description="Detector model (version) that found the patches")
    found: int = Field(description="Patches detected")
    area_m2: float
    area_mu: float
    suspected: int = Field(description="Judged 疑似 (any suspected_* category) by the machine")
    suspected_area_m2: float
    suspected_area_mu: float
    by_category: list[StatsCategoryCount]
    reviewed: int = Field(description="With an inspector's verdict")
    by_verdict: list[StatsVerdictCount]
    confirmed: int = Field(description="Verdict confirmed_violation (违法违规)")
    confirmed_area_m2: float
    confirmed_area_mu: float
    rejected: int = Field(description="Verdict false_detection (误判) or not_construction (非生产建设项目)")
    closed: int = Field(description="Closed (销号) after rectification")
    closed_area_m2: float
    closed_area_mu: float
    field_precision: float | None = Field(
        description="confirmed / (confirmed + rejected): how often inspectors agreed with the detector; "
        "null before any such verdict"
    )
    disturbance_precision: float | None = Field(
        description="(confirmed + compliant verdicts) / reviewed: share of reviewed patches that were real "
        "construction disturbances"
    )


class StatsPublic(BaseModel):
    period_start: dt.date | None
    period_end: dt.date | None
    group_by: list[str]
    data: list[StatsRowPublic]
    total: StatsRowPublic = Field(description="All groups together")


class CreditRulesPublic(BaseModel):
    """The configured rule (SOILWATCH_CREDIT_*)."""

    watch_min_cases: int = Field(description="Confirmed cases that put a builder on the 重点关注名单")
    blacklist_min_cases: int = Field(description="Confirmed cases that put a builder on the 黑名单")
    rectify_days: int | None = Field(description="An open case this many days after its verdict → 黑名单")
    window_days: int | None = Field(description="Only cases confirmed within this many days count")


class CreditCasePublic(_Out):
    patch_id: int
    patch_code: str
    district_code: str | None
    category: str | None = Field(description="Machine category before review, e.g. suspected_unapproved")
    category_label: str | None
    area_m2: float
    verdict_on: dt.date = Field(description="Date of the first confirming review (starts the rectification deadline)")
    closed: bool = Field(description="Closed (销号) after rectification")
    closed_on: dt.date | None
    overdue: bool = Field(description="Still open past the rectification deadline")
    attribution: str | None = Field(
        description="How the builder was found: review_note (建设单位：… in the review note), overlap (the project "
        "the patch overlaps most), nearest (the nearest project); null when unattributed"
    )
    project_id: int | None = None
    project_code: str | None = None
    project_name: str | None = None


class CreditEntryPublic(_Out):
    builder: str = Field(description="建设单位")
    level: str = Field(description="key_attention or blacklist", examples=["blacklist"])
    level_label: str = Field(examples=["黑名单"])
    reasons: list[str]
    confirmed_cases: int
    open_cases: int
    overdue_cases: int
    first_verdict_on: dt.date
    last_verdict_on: dt.date
    cases: list[CreditCasePublic]


class CreditListPublic(BaseModel):
    as_of: dt.date
    rules: CreditRulesPublic
    data: list[CreditEntryPublic]
    count: int
    unattributed: list[CreditCasePublic] = Field(
        description="Confirmed cases with no builder yet: name it in the review note as 建设单位：<name>"
    )


# --- Priority zones (重点监管区域) ----------------------------------------------------------------------------

__all__ += ["PriorityZonePublic", "PriorityZonesPublic", "PriorityZoneUpdate", "AssigneePublic", "AssigneesPublic"]


class PriorityZoneUpdate(BaseModel):
    """What a supervisor may change by hand; the outline is changed by re-importing. Leave a field out to keep it."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(None, min_length=1, max_length=300, description="名称")
    kind: ZoneKind = Field(None, description="类型")
    weight: int = Field(None, ge=0, le=1000, description="Priority added to suspected patches inside (0-1000)")


class PriorityZonePublic(_Out):
    """A priority zone; ``geometry`` is GeoJSON in EPSG:4326 (lon, lat)."""

    id: int
    name: str = Field(description="名称", examples=["于桥水库饮用水水源保护区"])
    kind: str = Field(
        description="water_source, ecological_red_line, nature_reserve, river_corridor, steep_slope, geohazard "
        "or other",
        examples=["water_source"],
    )
    kind_label: str | None = Field(None, examples=["水源保护区"])
    weight: int = Field(description="Priority added to the patches inside (the heaviest zone counts, not the sum)")
    district_code: str | None
    area_m2: float = Field(description="Area of the geometry, m² (geodesic)")
    patch_count: int | None = Field(None, description="Patches inside it (one zone only)")
    bbox: list[float] | None = Field(None, description="[min_lon, min_lat, max_lon, max_lat]")
    geometry: dict[str, Any] | None = Field(None, description="GeoJSON geometry, EPSG:4326")
    attributes: dict[str, Any] = Field(default_factory=dict, description="Unmapped columns of the source file")
    source_file: str | None = None
    import_id: int | None = None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class PriorityZonesPublic(BaseModel):
    data: list[PriorityZonePublic]
    count: int = Field(description="Total matching rows (all pages)")
    offset: int
    limit: int


class AssigneePublic(_Out):
    """A user a patch can be assigned to (an inspector or supervisor working in the district)."""

    id: int
    name: str
    role: str = Field(examples=["inspector"])


class AssigneesPublic(BaseModel):
    data: list[AssigneePublic]
    count: int
