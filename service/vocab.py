"""Controlled vocabularies: stable English codes with the Chinese labels used in practice (DOMAIN.md)."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "Role",
    "Category",
    "Verdict",
    "ReviewStatus",
    "ScanStatus",
    "VectorType",
    "ZoneKind",
    "CATEGORY_LABELS",
    "VERDICT_LABELS",
    "ROLE_RANK",
    "ZONE_KIND_LABELS",
    "ZONE_KIND_ALIASES",
    "ZONE_KIND_KEYWORDS",
]


class Role(StrEnum):
    admin = "admin"
    supervisor = "supervisor"
    inspector = "inspector"
    viewer = "viewer"


#: Higher may do what lower may: viewer reads, inspector reviews, supervisor manages data, admin all.
ROLE_RANK = {Role.viewer: 0, Role.inspector: 1, Role.supervisor: 2, Role.admin: 3}


class Category(StrEnum):
    """Compliance category of a patch (合规性). Machine output is always a 疑似 (suspected) form."""

    compliant = "compliant"
    suspected_unapproved = "suspected_unapproved"
    suspected_out_of_bounds = "suspected_out_of_bounds"
    suspected_relocated = "suspected_relocated"
    too_small = "too_small"


CATEGORY_LABELS = {
    Category.compliant: "合规",
    Category.suspected_unapproved: "疑似未批先建",
    Category.suspected_out_of_bounds: "疑似超出防治责任范围",
    Category.suspected_relocated: "疑似建设地点变更",
    Category.too_small: "面积过小未判别",
}


class Verdict(StrEnum):
    """Field-review verdict (复核结论)."""

    confirmed_violation = "confirmed_violation"
    compliant = "compliant"
    not_construction = "not_construction"
    false_detection = "false_detection"


VERDICT_LABELS = {
    Verdict.confirmed_violation: "违法违规",
    Verdict.compliant: "合规",
    Verdict.not_construction: "非生产建设项目",
    Verdict.false_detection: "误判",
}


class ReviewStatus(StrEnum):
    unreviewed = "unreviewed"
    assigned = "assigned"
    reviewed = "reviewed"
    closed = "closed"  # 销号: rectified after enforcement


class ScanStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class VectorType(StrEnum):
    """What a project's polygon is (矢量化类型)."""

    responsibility = "responsibility"  # 防治责任范围: the approved outline
    schematic = "schematic"  # 示意性范围: only a rough location; matched more loosely
    point_buffer = "point_buffer"  # only a point was given; buffered by settings.point_buffer_m


VECTOR_TYPE_ALIASES = {
    "防治责任范围": VectorType.responsibility,
    "示意性范围": VectorType.schematic,
    "示意范围": VectorType.schematic,
    "红线": VectorType.responsibility,
    "responsibility": VectorType.responsibility,
    "schematic": VectorType.schematic,
    "point_buffer": VectorType.point_buffer,
}

#: Ranking of suspected categories (higher = review first); priority zones add to it.
CATEGORY_PRIORITY = {
    Category.suspected_unapproved: 30,
    Category.suspected_out_of_bounds: 20,
    Category.suspected_relocated: 10,
    Category.compliant: 0,
    Category.too_small: 0,
}


class ZoneKind(StrEnum):
    """Kind of priority zone (重点监管区域, DOMAIN.md): patches inside one rank higher."""

    water_source = "water_source"  # 饮用水水源保护区, e.g. 于桥水库
    ecological_red_line = "ecological_red_line"  # 生态保护红线
    nature_reserve = "nature_reserve"  # 自然保护区, 湿地
    river_corridor = "river_corridor"  # 河湖管理范围, e.g. 沁河、丹河
    steep_slope = "steep_slope"  # 25° 以上陡坡
    geohazard = "geohazard"  # 崩塌、滑坡、泥石流易发区
    other = "other"


ZONE_KIND_LABELS = {
    ZoneKind.water_source: "水源保护区",
    ZoneKind.ecological_red_line: "生态保护红线",
    ZoneKind.nature_reserve: "自然保护区",
    ZoneKind.river_corridor: "河湖管理范围",
    ZoneKind.steep_slope: "陡坡",
    ZoneKind.geohazard: "地质灾害易发区",
    ZoneKind.other: "其他重点区域",
}

#: Exact spellings of a zone's kind in zone files (after stripping spaces), besides the codes and labels.
ZONE_KIND_ALIASES = {
    **{kind.value: kind for kind in ZoneKind},
    **{label: kind for kind, label in ZONE_KIND_LABELS.items()},
    "饮用水水源保护区": ZoneKind.water_source,
    "水源地": ZoneKind.water_source,
    "生态红线": ZoneKind.ecological_red_line,
    "湿地": ZoneKind.nature_reserve,
    "河道": ZoneKind.river_corridor,
    "陡坡地": ZoneKind.steep_slope,
    "其他": ZoneKind.other,
}

#: Words that give the kind away in longer names (一级水源保护区, 25度以上陡坡 …); the first match wins.
ZONE_KIND_KEYWORDS = (
    ("水源", ZoneKind.water_source),
    ("水库", ZoneKind.water_source),
    ("红线", ZoneKind.ecological_red_line),
    ("自然保护", ZoneKind.nature_reserve),
    ("湿地", ZoneKind.nature_reserve),
    ("陡坡", ZoneKind.steep_slope),
    ("坡度", ZoneKind.steep_slope),
    ("地质灾害", ZoneKind.geohazard),
    ("滑坡", ZoneKind.geohazard),
    ("泥石流", ZoneKind.geohazard),
    ("崩塌", ZoneKind.geohazard),
    ("河湖", ZoneKind.river_corridor),
    ("河道", ZoneKind.river_corridor),
)
