"""Shared dependencies: settings, DB session, the current user, district scoping, owned-or-404."""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from service.api.problems import is_unavailable
from service.core.config import Settings
from service.core.security import FailureLimiter, hash_token
from service.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    PreconditionRequiredError,
    TooManyRequestsError,
)
from service.models import ApiToken, User
from service.scope import DistrictScope
from service.users import authenticate, note_token_use
from service.vocab import ROLE_RANK, Role

__all__ = [
    "get_settings_dep",
    "get_session",
    "get_current_user",
    "get_current_token",
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
    "MAX_ID",
    "RELEASE_THREADS",
    "release_connection",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Threads that close request sessions (give connections back), apart from the request thread pool.
RELEASE_THREADS = 16
#: Largest row id (PostgreSQL ``integer``); path ids above it answer 422.
MAX_ID = 2**31 - 1
_bearer = HTTPBearer(auto_error=False, description="API token from `soilwatch admin create-user`.")


# Dependencies that only read the request or an object already loaded are ``async def``: FastAPI runs a
# plain ``def`` dependency in the thread pool, and each of those hops cost ≈ 0.3–1 ms of CPU per request
# under load (thread hand-over, GIL, event-loop wake-up). Those that query the database stay ``def``.


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request; routes commit, anything uncommitted is rolled back.

    Opening a session touches no connection, so it happens on the event loop; closing one that holds a
    connection (a rollback and the return to the pool: database I/O) runs in the thread pool (closing it
    on the event loop for SQLite measured no faster).
    """
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
    finally:
        if session.in_transaction():
            # Not through the request thread pool: when its threads all wait for a pooled connection, the
            # sessions holding the connections must still be able to give them back.
            await anyio.to_thread.run_sync(_close, session, limiter=_release_limiter(request))
        else:
            _close(session)


def _release_limiter(request: Request) -> anyio.CapacityLimiter:
    """The thread limiter of session closes, one per app and event loop (tests run several loops)."""
    loop = asyncio.get_running_loop()
    held: tuple[asyncio.AbstractEventLoop, anyio.CapacityLimiter] | None = getattr(
        request.app.state, "release_limiter", None
    )
    if held is None or held[0] is not loop:
        held = request.app.state.release_limiter = (loop, anyio.CapacityLimiter(RELEASE_THREADS))
    return held[1]


def release_connection(session: Session) -> None:
    """End a dependency's read-only transaction, so that its connection goes back to the pool before the
    next thread-pool hop (the loaded rows stay: ``expire_on_commit=False``). A request must not hold a
    connection while it waits for a thread: under load every thread may be waiting for a connection."""
    if session.in_transaction() and not (session.new or session.dirty or session.deleted):
        session.commit()


def _close(session: Session) -> None:
    try:
        session.close()
    except DBAPIError as exc:  # the database cut the connection (restart): nothing left to roll back
        if not is_unavailable(exc):
            raise
        log.warning("session closed on a lost database connection: %s", str(exc).splitlines()[0])


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]


def get_current_user(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user owning the ``Authorization: Bearer`` token; 401 without a valid one (saying whether it is
    unknown, revoked or expired), 429 with Retry-After once the client address has failed too often."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationError(
            "missing API token; send 'Authorization: Bearer <token>' (create one with soilwatch admin create-user)",
            headers=challenge,
        )
    limiter: FailureLimiter | None = getattr(request.app.state, "auth_limiter", None)
    client = request.client.host if request.client is not None else "unknown"
    if limiter is not None and (wait := limiter.retry_after(client)) is not None:
        seconds = max(1, math.ceil(wait))
        raise TooManyRequestsError(
            f"too many failed sign-ins from {client}; wait {seconds} s and check the API token",
            headers={"Retry-After": str(seconds)},
        )
    token = credentials.credentials.strip()
    try:
        row = authenticate(session, token)
    except AuthenticationError as exc:
        if limiter is not None:
            limiter.fail(client)
        log.warning("failed sign-in from %s: %s", client, exc.message)
        exc.headers = {**challenge, **exc.headers}
        raise
    user = row.user
    if not note_token_use(session, row):  # commits when it writes, which also ends the transaction
        release_connection(session)
    return user


def get_current_token(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> ApiToken | None:
    """The :class:`ApiToken` row of this request's bearer token (after :func:`get_current_user` let it in)."""
    if credentials is None:
        return None
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(credentials.credentials.strip())))


UserDep = Annotated[User, Depends(get_current_user)]


def require_role(minimum: Role) -> Callable[[User], Awaitable[User]]:
    """A dependency that lets through users whose role is at least ``minimum``."""

    async def check(user: UserDep) -> User:
        if ROLE_RANK[Role(user.role)] < ROLE_RANK[minimum]:
            raise PermissionDeniedError(f"role {user.role!r} may not do this; it needs {minimum.value!r} or higher")
        return user

    check.__name__ = f"require_{minimum.value}"
    return check


async def get_scope(user: UserDep) -> DistrictScope:
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
        obj = get_owned_or_404(session, scope, model, path[param])
        release_connection(session)
        return obj

    # FastAPI reads the signature: expose the path parameter under its real name.
    sig = inspect.signature(dependency)
    params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    # Ids are 32-bit on PostgreSQL: a larger one is a 422 on both engines, not a driver overflow (500).
    id_type = Annotated[int, Path(ge=1, le=MAX_ID)]
    params.append(inspect.Parameter(param, inspect.Parameter.KEYWORD_ONLY, annotation=id_type))
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
