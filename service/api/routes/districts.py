"""``/districts``: the districts the user sees, and who can be assigned patches in one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from sqlalchemy import select

from service.api.deps import ScopeDep, SessionDep, require_role
from service.api.problems import problem_responses
from service.errors import NotFoundError
from service.models import District, User
from service.schemas import AssigneePublic, AssigneesPublic, DistrictPublic, DistrictsPublic
from service.scope import DistrictScope
from service.vocab import Role

__all__ = ["router"]

router = APIRouter(prefix="/districts", tags=["districts"])
Supervisor = Annotated[User, Depends(require_role(Role.supervisor))]


@router.get("", response_model=DistrictsPublic, summary="Districts visible to the user")
def list_districts(session: SessionDep, scope: ScopeDep) -> DistrictsPublic:
    rows = session.scalars(scope.apply(select(District).order_by(District.code), District.code)).all()
    return DistrictsPublic(data=[DistrictPublic.model_validate(r) for r in rows], count=len(rows))


@router.get(
    "/{code}/assignees",
    response_model=AssigneesPublic,
    summary="Inspectors and supervisors a patch of this district can be assigned to",
    responses=problem_responses(403),
)
def list_assignees(
    user: Supervisor, session: SessionDep, scope: ScopeDep, code: Annotated[str, Path(max_length=12)]
) -> AssigneesPublic:
    """Active inspectors, then supervisors, working in district ``code`` (city-wide users included): the
    users ``PATCH /patches/{id}`` accepts as ``assignee_id`` for its patches."""
    if not scope.allows(code) or session.get(District, code) is None:
        raise NotFoundError(f"district {code!r} not found (or not one of yours)")
    roles = (Role.inspector.value, Role.supervisor.value)
    users = session.scalars(select(User).where(User.active.is_(True), User.role.in_(roles))).all()
    rows = sorted(
        (u for u in users if DistrictScope.of(u).allows(code)), key=lambda u: (u.role != Role.inspector, u.name)
    )
    return AssigneesPublic(data=[AssigneePublic.model_validate(u) for u in rows], count=len(rows))
