"""The builder credit list (重点关注名单 / 黑名单), computed from confirmed violations; no table of its own.

A *case* is a patch with the verdict ``confirmed_violation``. It is attributed to a builder (建设单位),
in this order:

1. ``review_note``: a confirming review's note names it as ``建设单位：<name>`` (or ``建设单位:``; the latest
   such note wins), the way inspectors record who built an unapproved site (未批先建 has no project);
2. ``overlap``: the builder of the approved project the patch overlaps most (超出防治责任范围);
3. ``nearest``: the builder of the nearest project, when matching judged the site 疑似建设地点变更.

Cases that none of these attributes are returned apart as ``unattributed``. The level follows the rule
in the settings: ``credit_blacklist_min_cases`` confirmed cases, or any case still open (not 销号)
``credit_rectify_days`` after its verdict, put a builder on the 黑名单 (``blacklist``); otherwise
``credit_watch_min_cases`` put it on the 重点关注名单 (``key_attention``). With ``credit_window_days``
only cases confirmed within that many days before ``as_of`` count.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core.config import Settings
from service.models import AuditEvent, Patch, PatchMatch, Project, Review
from service.scope import DistrictScope
from service.vocab import CATEGORY_LABELS, Category, ReviewStatus, Verdict

__all__ = [
    "CreditLevel",
    "CREDIT_LEVEL_LABELS",
    "CreditCase",
    "CreditEntry",
    "CreditRules",
    "CreditList",
    "builder_from_note",
    "compute_credit_list",
]


class CreditLevel(StrEnum):
    key_attention = "key_attention"
    blacklist = "blacklist"


CREDIT_LEVEL_LABELS = {CreditLevel.key_attention: "重点关注名单", CreditLevel.blacklist: "黑名单"}
_NOTE_BUILDER = re.compile(r"建设单位\s*[:：]\s*([^\s,，;；。、]+)")


def builder_from_note(note: str | None) -> str | None:
    """The builder an inspector named in a review note as ``建设单位：<name>``, or None."""
    match = _NOTE_BUILDER.search(note or "")
    return match.group(1) if match else None


def _builder_key(name: str) -> str:
    """Names compared without width or space differences: ``天津某（集团）`` = ``天津某(集团)``."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", name)).casefold()


@dataclass(frozen=True)
class CreditRules:
    watch_min_cases: int
    blacklist_min_cases: int
    rectify_days: int | None
    window_days: int | None

    @classmethod
    def from_settings(cls, settings: Settings) -> CreditRules:
        return cls(settings.credit_watch_min_cases, settings.credit_blacklist_min_cases,
                   settings.credit_rectify_days, settings.credit_window_days)  # fmt: skip


@dataclass
class CreditCase:
    patch_id: int
    patch_code: str
    district_code: str | None
    category: str | None
    category_label: str | None
    area_m2: float
    verdict_on: dt.date
    closed: bool
    closed_on: dt.date | None
    overdue: bool
    attribution: str | None  # review_note, overlap, nearest; None when unattributed
    project_id: int | None = None
    project_code: str | None = None
    project_name: str | None = None


@dataclass
class CreditEntry:
    builder: str
    level: CreditLevel
    reasons: list[str]
    cases: list[CreditCase] = field(default_factory=list)

    @property
    def level_label(self) -> str:
        return CREDIT_LEVEL_LABELS[self.level]

    @property
    def confirmed_cases(self) -> int:
        return len(self.cases)

    @property
    def open_cases(self) -> int:
        return sum(not c.closed for c in self.cases)

    @property
    def overdue_cases(self) -> int:
        return sum(c.overdue for c in self.cases)

    @property
    def first_verdict_on(self) -> dt.date:
        return min(c.verdict_on for c in self.cases)

    @property
    def last_verdict_on(self) -> dt.date:
        return max(c.verdict_on for c in self.cases)


@dataclass
class CreditList:
    as_of: dt.date
    rules: CreditRules
    entries: list[CreditEntry]
    unattributed: list[CreditCase]


def _as_date(value: dt.datetime | dt.date) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def _closures(session: Session, patch_ids: list[int]) -> dict[int, dt.date]:
    """When each patch was last set to review status ``closed`` (销号), from the audit trail."""
    closed: dict[int, dt.date] = {}
    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.entity_type == Patch.__tablename__, AuditEvent.entity_id.in_(patch_ids))
        .order_by(AuditEvent.at, AuditEvent.id)
    )
    for event in events:
        if (event.after or {}).get("review_status") == ReviewStatus.closed:
            closed[event.entity_id] = _as_date(event.at)
    return closed


def compute_credit_list(
    session: Session,
    scope: DistrictScope,
    rules: CreditRules,
    *,
    as_of: dt.date | None = None,
    district: str | None = None,
    builder: str | None = None,
    level: CreditLevel | None = None,
) -> CreditList:
    """Builders with confirmed violations in the caller's districts, their cases and list level at ``as_of``."""
    as_of = as_of or dt.datetime.now(dt.UTC).date()
    stmt = scope.apply(select(Patch), Patch.district_code).where(Patch.verdict == Verdict.confirmed_violation.value)
    if district:
        stmt = stmt.where(Patch.district_code == district)
    patches = {p.id: p for p in session.scalars(stmt.order_by(Patch.id))}
    if not patches:
        return CreditList(as_of, rules, [], [])
    ids = list(patches)
    # The first confirmation starts the rectification clock (a later re-review does not restart it);
    # the latest note naming a builder names it.
    first_confirmed: dict[int, dt.date] = {}
    named: dict[int, str] = {}
    for confirmation in session.scalars(
        select(Review)
        .where(Review.patch_id.in_(ids), Review.verdict == Verdict.confirmed_violation.value)
        .order_by(Review.created_at, Review.id)
    ):
        first_confirmed.setdefault(confirmation.patch_id, _as_date(confirmation.created_at))
        if (name := builder_from_note(confirmation.note)) is not None:
            named[confirmation.patch_id] = name
    overlaps: dict[int, int] = {}
    for patch_id, project_id in session.execute(
        select(PatchMatch.patch_id, PatchMatch.project_id)
        .where(PatchMatch.patch_id.in_(ids))
        .order_by(PatchMatch.patch_id, PatchMatch.overlap_area_m2.desc(), PatchMatch.id)
    ):
        overlaps.setdefault(patch_id, project_id)
    project_ids = set(overlaps.values()) | {p.nearest_project_id for p in patches.values() if p.nearest_project_id}
    projects = {p.id: p for p in session.scalars(select(Project).where(Project.id.in_(project_ids)))}
    closures = _closures(session, ids)
    earliest = as_of - dt.timedelta(days=rules.window_days) if rules.window_days else None

    by_builder: dict[str, tuple[str, list[CreditCase]]] = {}
    unattributed: list[CreditCase] = []
    for patch in patches.values():
        verdict_on = first_confirmed.get(patch.id) or _as_date(patch.updated_at)
        if verdict_on > as_of or (earliest is not None and verdict_on < earliest):
            continue
        closed = patch.review_status == ReviewStatus.closed
        closed_on = closures.get(patch.id) if closed else None
        deadline = verdict_on + dt.timedelta(days=rules.rectify_days) if rules.rectify_days is not None else None
        case = CreditCase(
            patch_id=patch.id,
            patch_code=patch.patch_code,
            district_code=patch.district_code,
            category=patch.category,
            category_label=CATEGORY_LABELS.get(Category(patch.category)) if patch.category else None,
            area_m2=patch.area_m2,
            verdict_on=verdict_on,
            closed=closed,
            closed_on=closed_on,
            overdue=not closed and deadline is not None and as_of > deadline,
            attribution=None,
        )
        overlap = projects.get(overlaps.get(patch.id, -1))
        # The nearest project explains a site only when matching judged it a relocation (it lies close by);
        # an unapproved site far from everything still has *some* nearest project.
        relocated = patch.category == Category.suspected_relocated
        nearest = projects.get(patch.nearest_project_id or -1) if relocated else None
        name = named.get(patch.id)
        project = overlap
        if name:
            case.attribution = "review_note"
        elif overlap is not None and overlap.builder:
            name, case.attribution = overlap.builder, "overlap"
        elif nearest is not None and nearest.builder:
            name, case.attribution, project = nearest.builder, "nearest", nearest
        if project is not None:
            case.project_id, case.project_code, case.project_name = project.id, project.code, project.name
        if not name:
            unattributed.append(case)
            continue
        by_builder.setdefault(_builder_key(name), (name.strip(), []))[1].append(case)

    entries = []
    needle = _builder_key(builder) if builder else None
    for name, cases in by_builder.values():
        if needle and needle not in _builder_key(name):
            continue
        entry = _judge(name, cases, rules)
        if entry is not None and (level is None or entry.level == level):
            entries.append(entry)
    entries.sort(key=lambda e: (e.level != CreditLevel.blacklist, -e.confirmed_cases, e.builder))
    return CreditList(as_of, rules, entries, unattributed if not builder else [])


def _judge(name: str, cases: list[CreditCase], rules: CreditRules) -> CreditEntry | None:
    cases.sort(key=lambda c: (c.verdict_on, c.patch_id))
    count = len(cases)
    overdue = sum(c.overdue for c in cases)
    reasons: list[str] = []
    if count >= rules.blacklist_min_cases:
        reasons.append(f"{count} confirmed violations (blacklist from {rules.blacklist_min_cases})")
    if overdue:
        reasons.append(f"{overdue} case(s) not closed (销号) within {rules.rectify_days} days of the verdict")
    if reasons:
        return CreditEntry(name, CreditLevel.blacklist, reasons, cases)
    if count >= rules.watch_min_cases:
        reasons.append(f"{count} confirmed violation(s) (key attention from {rules.watch_min_cases})")
        return CreditEntry(name, CreditLevel.key_attention, reasons, cases)
    return None
