"""The one settings class of the service, read from ``SOILWATCH_*`` environment variables or ``.env``.

Every threshold of the compliance judgement lives here, not in code (DOMAIN.md: "thresholds are
configuration, not constants").
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "get_settings", "DEFAULT_FIELD_MAP", "DEFAULT_ZONE_FIELD_MAP", "DEFAULT_ZONE_WEIGHTS"]

#: Column names seen in approved-project lists (Chinese and English) → our attribute names.
#: Keys are compared after stripping whitespace and case-folding.
DEFAULT_FIELD_MAP: dict[str, str] = {
    "项目名称": "name",
    "项目代码": "code",
    "项目编号": "code",
    "建设单位": "builder",
    "行业类别": "industry",
    "所属行业": "industry",
    "审批机关": "approval_authority",
    "审批单位": "approval_authority",
    "批复文号": "approval_number",
    "批复时间": "approved_on",
    "批复日期": "approved_on",
    "防治责任范围面积": "declared_area_hm2",
    "防治责任范围面积(hm2)": "declared_area_hm2",
    "立项级别": "approval_level",
    "项目类别": "project_category",
    "项目性质": "project_nature",
    "建设状态": "construction_state",
    "矢量化类型": "vector_type",
    "行政区代码": "district_code",
    "区县代码": "district_code",
    "经度": "lon",
    "纬度": "lat",
    "name": "name",
    "code": "code",
    "builder": "builder",
    "industry": "industry",
    "approval_authority": "approval_authority",
    "approval_number": "approval_number",
    "approved_on": "approved_on",
    "declared_area_hm2": "declared_area_hm2",
    "district_code": "district_code",
    "vector_type": "vector_type",
    "lon": "lon",
    "lat": "lat",
    "x": "x",
    "y": "y",
}

#: Column names seen in priority-zone files (重点监管区域) → zone attributes; compared like DEFAULT_FIELD_MAP.
DEFAULT_ZONE_FIELD_MAP: dict[str, str] = {
    "名称": "name",
    "区域名称": "name",
    "重点区域名称": "name",
    "保护区名称": "name",
    "水源地名称": "name",
    "类型": "kind",
    "区域类型": "kind",
    "重点区域类型": "kind",
    "类别": "kind",
    "权重": "weight",
    "优先级权重": "weight",
    "行政区代码": "district_code",
    "区县代码": "district_code",
    "name": "name",
    "zone_name": "name",
    "kind": "kind",
    "type": "kind",
    "zone_type": "kind",
    "weight": "weight",
    "district_code": "district_code",
}

#: Priority added to a patch inside a zone of each kind (see service.zones); a zone's own 权重 overrides it.
#: For scale: the compliance categories rank 30 (疑似未批先建), 20, 10 and 0 (service.vocab.CATEGORY_PRIORITY).
DEFAULT_ZONE_WEIGHTS: dict[str, int] = {
    "water_source": 50,
    "ecological_red_line": 40,
    "nature_reserve": 40,
    "river_corridor": 30,
    "steep_slope": 25,
    "geohazard": 25,
    "other": 10,
}


class Settings(BaseSettings):
    """Service settings. Environment variables are the field names upper-cased with ``SOILWATCH_``."""

    model_config = SettingsConfigDict(env_prefix="SOILWATCH_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("soilwatch-data"), description="Uploads, imagery and the SQLite file.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: an SQLite file soilwatch.db in data_dir."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    # Limits
    max_upload_bytes: int = Field(default=2 * 1024**3, gt=0, description="Largest imagery upload.")
    max_import_bytes: int = Field(default=200 * 1024**2, gt=0, description="Largest project-list upload.")
    max_unzipped_bytes: int = Field(default=1024**3, gt=0, description="Largest total size inside a zip.")
    max_zip_ratio: float = Field(default=200.0, gt=1, description="Largest uncompressed/compressed ratio per member.")
    page_size_max: int = Field(default=500, gt=0)
    max_body_bytes: int = Field(
        default=1024**2, gt=0, description="Largest request body other than a multipart upload (JSON); bigger: 413."
    )
    max_query_bytes: int = Field(default=4096, gt=0, description="Longest query string; longer: 422.")
    max_query_params: int = Field(default=100, gt=0, description="Most query parameters in one request; more: 422.")
    max_query_value_chars: int = Field(default=500, gt=0, description="Longest single query value; longer: 422.")
    # Access (API tokens, sign-in, browsers)
    token_lifetime_days: int | None = Field(
        default=90, ge=1, description="New API tokens expire after this many days; 'never': they do not expire."
    )
    auth_failures_per_minute: int = Field(
        default=10, ge=1, description="Failed sign-ins per client address and minute before it gets 429."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API from other sites (comma-separated); empty: no CORS.",
    )
    # Project import
    field_map: dict[str, str] = Field(
        default_factory=dict, description="Extra column-name → attribute mappings, merged over the defaults."
    )
    point_buffer_m: float = Field(default=100.0, gt=0, description="Buffer radius for projects given as a point.")
    # Priority zones (重点监管区域)
    zone_weights: dict[str, int] = Field(
        default_factory=dict,
        description="Priority added to patches inside a zone, per kind (water_source, ecological_red_line, "
        "nature_reserve, river_corridor, steep_slope, geohazard, other), merged over the defaults, e.g. "
        'SOILWATCH_ZONE_WEIGHTS={"steep_slope": 35}. A patch in several zones gets the largest weight, not the sum.',
    )
    zone_field_map: dict[str, str] = Field(
        default_factory=dict, description="Extra column-name → zone attribute (name, kind, weight, district_code)."
    )
    # Compliance judgement (合规性判别)
    min_patch_area_m2: float = Field(default=200.0, ge=0, description="Smaller patches are not judged.")
    max_outside_share: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="A patch overlapping projects is 疑似超出防治责任范围 when more than this share of it lies "
        "outside them and that part is at least min_outside_area_m2.",
    )
    min_outside_area_m2: float = Field(default=500.0, ge=0, description="See max_outside_share; m².")
    relocation_distance_m: float = Field(
        default=300.0,
        ge=0,
        description="A non-overlapping patch this close to a project is 疑似建设地点变更. Kept short because the "
        "detector does not tell the kind of disturbance, so any nearby project counts: at 1 km most unmatched "
        "patches in a dense project list would be explained away as relocations.",
    )
    schematic_tolerance_m: float = Field(
        default=200.0, ge=0, description="Schematic (示意性范围) outlines are grown by this much before matching."
    )
    # Exports and the builder credit list (信用名单)
    export_max_features: int = Field(
        default=500_000, gt=0, description="Largest patch export; bigger queries answer 413 (narrow them)."
    )
    credit_watch_min_cases: int = Field(
        default=1, ge=1, description="Confirmed violations that put a builder on the 重点关注名单 (key attention)."
    )
    credit_blacklist_min_cases: int = Field(
        default=3, ge=1, description="Confirmed violations that put a builder on the 黑名单 (blacklist)."
    )
    credit_rectify_days: int | None = Field(
        default=180,
        ge=0,
        description="A confirmed case not closed (销号) this many days after its verdict puts the builder on the "
        "黑名单; unset for no deadline.",
    )
    credit_window_days: int | None = Field(
        default=None, ge=1, description="Only cases confirmed within this many days count; unset for all."
    )

    @field_validator("field_map", "zone_field_map")
    @classmethod
    def _strip_keys(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.strip().casefold(): v for k, v in value.items()}

    @field_validator("zone_weights")
    @classmethod
    def _known_zone_kinds(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(DEFAULT_ZONE_WEIGHTS))
        if unknown:
            raise ValueError(f"unknown zone kind {unknown[0]!r} in zone_weights; use {', '.join(DEFAULT_ZONE_WEIGHTS)}")
        return value

    @field_validator("token_lifetime_days", mode="before")
    @classmethod
    def _never(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", "never", "none", "null", "0"):
            return None  # SOILWATCH_TOKEN_LIFETIME_DAYS=never: tokens do not expire
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):  # "https://a.example, https://b.example" or a JSON list
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database URL; the embedded default is ``sqlite:///<data_dir>/soilwatch.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'soilwatch.db').resolve()}"

    @property
    def merged_field_map(self) -> dict[str, str]:
        """Defaults plus ``field_map``; keys case-folded."""
        merged = {k.strip().casefold(): v for k, v in DEFAULT_FIELD_MAP.items()}
        merged.update(self.field_map)
        return merged

    @property
    def merged_zone_field_map(self) -> dict[str, str]:
        """Zone-file defaults plus ``zone_field_map``; keys case-folded."""
        return {k.strip().casefold(): v for k, v in DEFAULT_ZONE_FIELD_MAP.items()} | self.zone_field_map

    @property
    def merged_zone_weights(self) -> dict[str, int]:
        """Default weight per zone kind: :data:`DEFAULT_ZONE_WEIGHTS` with ``zone_weights`` over it."""
        return DEFAULT_ZONE_WEIGHTS | self.zone_weights


@lru_cache
def get_settings() -> Settings:
    """Settings read once from the environment (tests build their own :class:`Settings`)."""
    return Settings()
