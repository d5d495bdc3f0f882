"""``/stats``: patches found, suspected, confirmed and closed per district, month and model; field precision."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from service.api.deps import ScopeDep, SessionDep, require_role
from service.models import User
from service.schemas import StatsPublic, StatsRowPublic
from service.stats import GroupBy, StatsQuery, compute_stats
from service.vocab import Role

__all__ = ["router"]

router = APIRouter(prefix="/stats", tags=["statistics"])
Reader = Annotated[User, Depends(require_role(Role.viewer))]


@router.get("", response_model=StatsPublic, summary="Statistics per district and period, and field precision")
def read_stats(
    user: Reader,
    session: SessionDep,
    scope: ScopeDep,
    district: Annotated[str | None, Query(description="District code, e.g. 120225")] = None,
    period_start: Annotated[dt.date | None, Query(description="After-image date from (inclusive)")] = None,
    period_end: Annotated[dt.date | None, Query(description="After-image date to (inclusive)")] = None,
    group_by: Annotated[
        list[GroupBy] | None, Query(description="Repeat to combine, e.g. group_by=district&group_by=model")
    ] = None,
) -> StatsPublic:
    """Counts and areas (m² and 亩) of the patches in your districts whose after-image date lies in the period.

    Per group: `found`; `suspected` (machine 疑似 categories, split by category); `reviewed` and each
    verdict; `confirmed` (违法违规); `rejected` (误判 or 非生产建设项目); `closed` (销号). The field precision
    of the model is `field_precision` = confirmed / (confirmed + rejected), by district, month (`group_by=month`)
    and model version (`group_by=model`); `disturbance_precision` also counts compliant verdicts as right.
    Without `group_by` the rows are per district; `total` sums all rows.
    """
    groups = tuple(dict.fromkeys(group_by or [GroupBy.district]))
    query = StatsQuery(district=district, period_start=period_start, period_end=period_end, group_by=groups)
    rows, total = compute_stats(session, scope, query)
    return StatsPublic(
        period_start=period_start,
        period_end=period_end,
        group_by=[g.value for g in groups],
        data=[StatsRowPublic.model_validate(row.public()) for row in rows],
        total=StatsRowPublic.model_validate(total.public()),
    )
