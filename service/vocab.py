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
    "CATEGORY_LABELS",
    "VERDICT_LABELS",
    "ROLE_RANK",
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
