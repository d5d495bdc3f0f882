"""``/users``: who am I; list and revoke API tokens (your own, or anyone's as an admin)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from pydantic import Field
from sqlalchemy import select

from service.api.deps import SessionDep, UserDep, get_current_token, require_role
from service.api.problems import problem_responses
from service.errors import NotFoundError
from service.models import ApiToken, User
from service.schemas import PublicModel, UserPublic
from service.users import revoke_token, token_state
from service.vocab import Role

__all__ = ["router", "TokenPublic"]

router = APIRouter(prefix="/users", tags=["users"])
Admin = Annotated[User, Depends(require_role(Role.admin))]
TokenId = Annotated[int, Path(ge=1)]


class TokenPublic(PublicModel):
    """An API token as listed: never the token itself, only the first characters that tell it apart.

    Kept beside its routes rather than in :mod:`service.schemas` because only these routes use it."""

    id: int
    user_id: int
    prefix: str = Field(description="First 10 characters of the token")
    created_at: dt.datetime
    expires_at: dt.datetime | None = Field(description="UTC; null: never expires")
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None = Field(description="UTC, to the hour: when the token was last used; null: never")
    state: str = Field(description="active, revoked or expired", examples=["active"])


def _public(row: ApiToken) -> TokenPublic:
    return TokenPublic(
        id=row.id,
        user_id=row.user_id,
        prefix=row.prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        state=token_state(row),
    )


def _tokens_of(session: SessionDep, user_id: int) -> list[TokenPublic]:
    rows = session.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)).all()
    return [_public(r) for r in rows]


def _token_of(session: SessionDep, user_id: int, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user_id:  # another user's token answers 404 too: ids do not leak
        raise NotFoundError(f"token {token_id!r} not found for user {user_id!r}; list them with GET /users/me/tokens")
    return row


@router.get("/me", response_model=UserPublic, summary="The user owning the token, with role and districts")
def read_me(user: UserDep) -> User:
    return user


@router.get("/me/tokens", response_model=list[TokenPublic], summary="Your API tokens (never the secrets)")
def list_my_tokens(user: UserDep, session: SessionDep) -> list[TokenPublic]:
    return _tokens_of(session, user.id)


@router.delete("/me/tokens/current", status_code=204, summary="Revoke the token this request carries (sign out)")
def revoke_current_token(
    user: UserDep, session: SessionDep, current: Annotated[ApiToken | None, Depends(get_current_token)]
) -> Response:
    if current is None:  # cannot happen once UserDep let the request in
        raise NotFoundError("this request carries no API token")
    revoke_token(session, current, user, reason="signed out")
    session.commit()
    return Response(status_code=204)


@router.delete("/me/tokens/{token_id}", status_code=204, summary="Revoke one of your own API tokens")
def revoke_my_token(token_id: TokenId, user: UserDep, session: SessionDep) -> Response:
    revoke_token(session, _token_of(session, user.id, token_id), user, reason="revoked by its owner")
    session.commit()
    return Response(status_code=204)


@router.get("/{user_id}/tokens", response_model=list[TokenPublic], summary="A user's API tokens (admin)",
            responses=problem_responses(403))  # fmt: skip
def list_user_tokens(user_id: Annotated[int, Path(ge=1)], admin: Admin, session: SessionDep) -> list[TokenPublic]:
    if session.get(User, user_id) is None:
        raise NotFoundError(f"user {user_id!r} not found")
    return _tokens_of(session, user_id)


@router.delete("/{user_id}/tokens/{token_id}", status_code=204, summary="Revoke a user's API token (admin)",
               responses=problem_responses(403))  # fmt: skip
def revoke_user_token(
    user_id: Annotated[int, Path(ge=1)], token_id: TokenId, admin: Admin, session: SessionDep
) -> Response:
    revoke_token(session, _token_of(session, user_id, token_id), admin, reason="revoked by an administrator")
    session.commit()
    return Response(status_code=204)
