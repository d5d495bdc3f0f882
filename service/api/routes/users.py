"""``/users``: who am I."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import UserDep
from service.models import User
from service.schemas import UserPublic

__all__ = ["router"]

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserPublic, summary="The user owning the token, with role and districts")
def read_me(user: UserDep) -> User:
    return user
