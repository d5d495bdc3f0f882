"""``/credit-list``: builders (建设单位) with confirmed violations: 重点关注名单 and 黑名单, with their cases."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from service.api.deps import ScopeDep, SessionDep, SettingsDep, require_role
from service.credit import CreditEntry, CreditLevel, CreditRules, compute_credit_list
from service.models import User
from service.schemas import CreditCasePublic, CreditEntryPublic, CreditListPublic, CreditRulesPublic
from service.vocab import Role

__all__ = ["router"]

router = APIRouter(prefix="/credit-list", tags=["credit list"])
Reader = Annotated[User, Depends(require_role(Role.viewer))]


def _entry(entry: CreditEntry) -> CreditEntryPublic:
    return CreditEntryPublic(
        builder=entry.builder,
        level=entry.level.value,
        level_label=entry.level_label,
        reasons=entry.reasons,
        confirmed_cases=entry.confirmed_cases,
        open_cases=entry.open_cases,
        overdue_cases=entry.overdue_cases,
        first_verdict_on=entry.first_verdict_on,
        last_verdict_on=entry.last_verdict_on,
        cases=[CreditCasePublic.model_validate(case) for case in entry.cases],
    )


@router.get("", response_model=CreditListPublic, summary="Builder credit list (重点关注名单 / 黑名单)")
def read_credit_list(
    user: Reader,
    session: SessionDep,
    settings: SettingsDep,
    scope: ScopeDep,
    level: Annotated[
        CreditLevel | None, Query(description="key_attention (重点关注名单) or blacklist (黑名单)")
    ] = None,
    builder: Annotated[str | None, Query(description="Part of the builder's name")] = None,
    district: str | None = None,
    as_of: Annotated[dt.date | None, Query(description="Judge deadlines on this date (default: today)")] = None,
) -> CreditListPublic:
    """Builders with confirmed violations in your districts, blacklist first, each with its cases.

    A case is a patch with the verdict `confirmed_violation`. Its builder comes from the confirming review's
    note (`建设单位：<name>`, needed for 未批先建 sites, which have no project), else from the project the patch
    overlaps most, else from the nearest project; cases with none are listed under `unattributed`.
    The level follows the configured rule (`rules`): `SOILWATCH_CREDIT_BLACKLIST_MIN_CASES` confirmed cases,
    or a case still open (not 销号) `SOILWATCH_CREDIT_RECTIFY_DAYS` after its verdict → 黑名单;
    else `SOILWATCH_CREDIT_WATCH_MIN_CASES` → 重点关注名单.
    """
    rules = CreditRules.from_settings(settings)
    result = compute_credit_list(session, scope, rules, as_of=as_of, district=district, builder=builder, level=level)
    return CreditListPublic(
        as_of=result.as_of,
        rules=CreditRulesPublic.model_validate(asdict(rules)),
        data=[_entry(e) for e in result.entries],
        count=len(result.entries),
        unattributed=[CreditCasePublic.model_validate(case) for case in result.unattributed],
    )
