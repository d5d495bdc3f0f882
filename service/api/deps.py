"""Shared dependencies: settings, DB session, the current user, district scoping, owned-or-404."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.core.config import Settings
from service.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    PreconditionRequiredError,
)
from service.models import User
from service.scope import DistrictScope
from service.users import user_for_token
from service.vocab import ROLE_RANK, Role

__all__ = [
    "get_settings_dep",
    "get_session",
    "get_current_user",
    "require_role",
    "DistrictScope",
    "get_scope",
    "get_owned_or_404",
    "owned",
    "SessionDep",
    "UserDep",
    "ScopeDep",
    "SettingsDep",
    "etag_of",
    "check_if_match",
]

T = TypeVar("T")
_bearer = HTTPBearer(auto_error=False, description="API token from `soilwatch admin create-user`.")


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; routes commit, anything uncommitted is rolled back."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]


def get_current_user(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> User:
    """The user owning the ``Authorization: Bearer`` token; 401 without a valid one."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationError(
            "missing API token; send 'Authorization: Bearer <token>' (create one with soilwatch admin create-user)",
            headers=challenge,
        )
    user = user_for_token(session, credentials.credentials.strip())
    if user is None:
        raise AuthenticationError(
            f"API token {credentials.credentials[:6]!r}… is unknown or revoked; ask an administrator for a new one",
            headers=challenge,
        )
    return user


UserDep = Annotated[User, Depends(get_current_user)]


def require_role(minimum: Role) -> Callable[[User], User]:
    """A dependency that lets through users whose role is at least ``minimum``."""

    def check(user: UserDep) -> User:
        if ROLE_RANK[Role(user.role)] < ROLE_RANK[minimum]:
            raise PermissionDeniedError(f"role {user.role!r} may not do this; it needs {minimum.value!r} or higher")
        return user

    check.__name__ = f"require_{minimum.value}"
    return check


def get_scope(user: UserDep) -> DistrictScope:
    return DistrictScope.of(user)


ScopeDep = Annotated[DistrictScope, Depends(get_scope)]


def get_owned_or_404(session: Session, scope: DistrictScope, model: type[T], ident: int) -> T:
    """The row ``model[ident]`` if it exists and lies in the user's districts; 404 otherwise.

    Rows of other districts answer 404 too, so that their existence does not leak.
    """
    obj = session.get(model, ident)
    if obj is None or not scope.allows(getattr(obj, "district_code", None)):
        raise NotFoundError(f"{model.__name__.lower()} {ident!r} not found (or not in your districts)")
    return obj


def owned(model: type[T], param: str) -> Callable[..., T]:
    """A dependency resolving path parameter ``param`` to an owned ``model`` row (see get_owned_or_404)."""

    def dependency(session: SessionDep, scope: ScopeDep, **path: int) -> T:
        return get_owned_or_404(session, scope, model, path[param])

    # FastAPI reads the signature: expose the path parameter under its real name.
    sig = inspect.signature(dependency)
    params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    params.append(inspect.Parameter(param, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[int, Path(ge=1)]))
    dependency.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    dependency.__name__ = f"owned_{model.__name__.lower()}"
    return dependency


def etag_of(obj: Any) -> str:
    """The strong ETag of a versioned row: ``"<table>-<id>-v<version>"``."""
    return f'"{type(obj).__tablename__}-{obj.id}-v{obj.version}"'


def check_if_match(if_match: str | None, obj: Any, *, required: bool = False) -> None:
    """412 when ``If-Match`` names another version (someone saved first); 428 when required and missing."""
    if if_match is None:
        if required:
            raise PreconditionRequiredError(
                f"send If-Match: {etag_of(obj)} (the ETag from your last GET) so that no change is lost"
            )
        return
    tags = {t.strip().removeprefix("W/") for t in if_match.split(",")}
    if "*" not in tags and etag_of(obj) not in tags:
        raise PreconditionFailedError(
            f"If-Match {if_match!r} does not match the current version {etag_of(obj)}; someone else saved first — "
            "reload, re-apply your change and send the new ETag"
        )
