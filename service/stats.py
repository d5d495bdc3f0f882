"""Statistics per district, month and model: patches found, suspected, confirmed, closed, and field precision.

All counting is one grouped SQL query (the same on SQLite and PostgreSQL); the pivot into rows is Python.
A patch belongs to the period of its after-image date (``after_date``, the date the disturbance was seen).

Definitions (one row of :class:`StatsRow`):

* ``found``: patches detected; ``area_m2`` / ``area_mu`` their area (1 亩 = 666.67 m²).
* ``suspected``: patches the machine judged 疑似 (any ``suspected_*`` category), split in ``by_category``.
* ``reviewed``: patches with an inspector's verdict; ``by_verdict`` splits them.
* ``confirmed``: verdict ``confirmed_violation`` (违法违规), whether or not closed since.
* ``rejected``: verdict ``false_detection`` (误判) or ``not_construction`` (非生产建设项目).
* ``closed``: review status ``closed`` (销号: rectified after enforcement).
* ``field_precision``: confirmed / (confirmed + rejected) — how often inspectors agreed with the detector
  that a flagged site is a violation; None before any such verdict.
* ``disturbance_precision``: (confirmed + compliant verdicts) / reviewed — the share of reviewed patches
  that were real construction disturbances (the detector's own task), whatever their compliance.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import extract, func, select
from sqlalchemy.orm import Session

from service.errors import InvalidInputError
from service.geometry import M2_PER_MU
from service.models import District, Patch
from service.scope import DistrictScope
from service.vocab import CATEGORY_LABELS, VERDICT_LABELS, Category, ReviewStatus, Verdict

__all__ = ["GroupBy", "StatsQuery", "StatsRow", "compute_stats", "REJECTING_VERDICTS"]

REJECTING_VERDICTS = frozenset({Verdict.false_detection.value, Verdict.not_construction.value})


class GroupBy(StrEnum):
    district = "district"
    month = "month"
    model = "model"


@dataclass(frozen=True)
class StatsQuery:
    district: str | None = None
    period_start: dt.date | None = None
    period_end: dt.date | None = None
    group_by: tuple[GroupBy, ...] = (GroupBy.district,)

    def __post_init__(self) -> None:
        if self.period_start and self.period_end and self.period_start > self.period_end:
            raise InvalidInputError(
                f"period_start {self.period_start.isoformat()!r} is after period_end {self.period_end.isoformat()!r}"
            )


@dataclass
class StatsRow:
    """Counts of one group (see the module docstring); keys not grouped by are None."""

    district_code: str | None = None
    district_name: str | None = None
    month: str | None = None  # "2024-05"
    model: str | None = None
    found: int = 0
    area_m2: float = 0.0
    suspected: int = 0
    suspected_area_m2: float = 0.0
    reviewed: int = 0
    confirmed: int = 0
    confirmed_area_m2: float = 0.0
    rejected: int = 0
    closed: int = 0
    closed_area_m2: float = 0.0
    by_category: dict[str, list[float]] = field(default_factory=dict)  # category → [count, area_m2]
    by_verdict: dict[str, int] = field(default_factory=dict)

    def add(self, category: str | None, verdict: str | None, status: str | None, count: int, area: float) -> None:
        self.found += count
        self.area_m2 += area
        if category:
            entry = self.by_category.setdefault(category, [0, 0.0])
            entry[0] += count
            entry[1] += area
            if category.startswith("suspected_"):
                self.suspected += count
                self.suspected_area_m2 += area
        if verdict:
            self.reviewed += count
            self.by_verdict[verdict] = self.by_verdict.get(verdict, 0) + count
            if verdict == Verdict.confirmed_violation:
                self.confirmed += count
                self.confirmed_area_m2 += area
            elif verdict in REJECTING_VERDICTS:
                self.rejected += count
        if status == ReviewStatus.closed:
            self.closed += count
            self.closed_area_m2 += area

    def public(self) -> dict[str, Any]:
        """A JSON-ready dict with 亩 figures, labelled breakdowns and the precision shares."""
        compliant = self.by_verdict.get(Verdict.compliant.value, 0)
        judged = self.confirmed + self.rejected
        return {
            "district_code": self.district_code,
            "district_name": self.district_name,
            "month": self.month,
            "model": self.model,
            "found": self.found,
            "area_m2": self.area_m2,
            "area_mu": self.area_m2 / M2_PER_MU,
            "suspected": self.suspected,
            "suspected_area_m2": self.suspected_area_m2,
            "suspected_area_mu": self.suspected_area_m2 / M2_PER_MU,
            "by_category": [
                {"category": c, "label": _label(CATEGORY_LABELS, Category, c), "count": int(n), "area_m2": a}
                for c, (n, a) in sorted(self.by_category.items())
            ],
            "reviewed": self.reviewed,
            "by_verdict": [
                {"verdict": v, "label": _label(VERDICT_LABELS, Verdict, v), "count": n}
                for v, n in sorted(self.by_verdict.items())
            ],
            "confirmed": self.confirmed,
            "confirmed_area_m2": self.confirmed_area_m2,
            "confirmed_area_mu": self.confirmed_area_m2 / M2_PER_MU,
            "rejected": self.rejected,
            "closed": self.closed,
            "closed_area_m2": self.closed_area_m2,
            "closed_area_mu": self.closed_area_m2 / M2_PER_MU,
            "field_precision": self.confirmed / judged if judged else None,
            "disturbance_precision": (self.confirmed + compliant) / self.reviewed if self.reviewed else None,
        }


def _label(labels: dict[Any, str], enum: type[StrEnum], value: str) -> str | None:
    try:
        return labels.get(enum(value))
    except ValueError:  # a value written by a newer version
        return None


def compute_stats(session: Session, scope: DistrictScope, query: StatsQuery) -> tuple[list[StatsRow], StatsRow]:
    """The rows of ``query`` (sorted by their keys) and the total over them, in the caller's districts."""
    keys: dict[GroupBy, list[Any]] = {
        GroupBy.district: [Patch.district_code],
        GroupBy.month: [extract("year", Patch.after_date), extract("month", Patch.after_date)],
        GroupBy.model: [Patch.model],
    }
    group_columns = [column for g in query.group_by for column in keys[g]]
    facts = [Patch.category, Patch.verdict, Patch.review_status]
    stmt = scope.apply(
        select(*group_columns, *facts, func.count(Patch.id), func.coalesce(func.sum(Patch.area_m2), 0.0)),
        Patch.district_code,
    )
    if query.district:
        stmt = stmt.where(Patch.district_code == query.district)
    if query.period_start:
        stmt = stmt.where(Patch.after_date >= query.period_start)
    if query.period_end:
        stmt = stmt.where(Patch.after_date <= query.period_end)
    stmt = stmt.group_by(*group_columns, *facts)
    names = {code: name for code, name in session.execute(select(District.code, District.name))}
    rows: dict[tuple[Any, ...], StatsRow] = defaultdict(StatsRow)
    total = StatsRow(district_code=query.district, district_name=names.get(query.district or ""))
    for record in session.execute(stmt):
        values = list(record)
        key: dict[str, Any] = {}
        for group in query.group_by:
            if group == GroupBy.month:
                year, month = values.pop(0), values.pop(0)
                key["month"] = f"{int(year):04d}-{int(month):02d}" if year is not None else None
            elif group == GroupBy.district:
                key["district_code"] = values.pop(0)
                key["district_name"] = names.get(key["district_code"])
            else:
                key["model"] = values.pop(0)
        category, verdict, status, count, area = values
        row = rows[tuple(key.items())]
        for name, value in key.items():
            setattr(row, name, value)
        row.add(category, verdict, status, int(count), float(area))
        total.add(category, verdict, status, int(count), float(area))
    ordered = sorted(rows.items(), key=lambda item: tuple((v is None, str(v)) for _, v in item[0]))
    return [row for _, row in ordered], total
