"""``/districts``: the districts the user sees."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from service.api.deps import ScopeDep, SessionDep
from service.models import District
from service.schemas import DistrictPublic, DistrictsPublic

__all__ = ["router"]

router = APIRouter(prefix="/districts", tags=["districts"])


@router.get("", response_model=DistrictsPublic, summary="Districts visible to the user")
def list_districts(session: SessionDep, scope: ScopeDep) -> DistrictsPublic:
    rows = session.scalars(scope.apply(select(District).order_by(District.code), District.code)).all()
    return DistrictsPublic(data=[DistrictPublic.model_validate(r) for r in rows], count=len(rows))
