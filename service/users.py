"""User, token and district management shared by the CLI and the API (no HTTP here)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import geopandas as gpd
from sqlalchemy import or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from service import audit
from service.core.security import hash_token, new_token, token_hint
from service.errors import AuthenticationError, ConflictError, ImportFormatError, InvalidInputError, NotFoundError
from service.geometry import WGS84
from service.models import ApiToken, District, User, set_geometry, utcnow
from service.vocab import Role

log = logging.getLogger(__name__)

__all__ = [
    "create_user",
    "issue_token",
    "authenticate",
    "token_state",
    "user_for_token",
    "note_token_use",
    "revoke_token",
    "find_token",
    "user_named",
    "import_districts",
    "CODE_FIELDS",
    "NAME_FIELDS",
]

CODE_FIELDS = ("code", "district_code", "区划代码", "行政区代码", "行政区划代码", "区县代码", "PAC", "adcode", "XZQDM")
NAME_FIELDS = ("name", "district_name", "名称", "区划名称", "行政区名称", "区县名称", "NAME", "XZQMC")


def create_user(
    session: Session,
    name: str,
    role: str,
    district_codes: list[str],
    *,
    all_districts: bool = False,
    expires_in: dt.timedelta | None = None,
) -> tuple[User, str]:
    """Create a user and a first token; returns ``(user, plain_token)`` — the token is not stored.

    The token expires ``expires_in`` from now (None: never).
    """
    try:
        role = Role(role).value
    except ValueError:
        raise InvalidInputError(f"unknown role {role!r}; use one of {', '.join(r.value for r in Role)}") from None
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise ConflictError(f"user {name!r} already exists; choose another name")
    districts = []
    for code in district_codes:
        district = session.get(District, code)
        if district is None:
            raise NotFoundError(
                f"district {code!r} does not exist; import districts first (soilwatch admin import-districts FILE)"
            )
        districts.append(district)
    if not districts and not all_districts and role != Role.admin:
        raise InvalidInputError(f"user {name!r} needs at least one --district (or --all-districts)")
    user = User(name=name, role=role, districts=districts, all_districts=all_districts or role == Role.admin)
    session.add(user)
    session.flush()
    return user, issue_token(session, user, expires_in=expires_in)


def issue_token(session: Session, user: User, *, expires_in: dt.timedelta | None = None) -> str:
    """A new token for ``user`` valid for ``expires_in`` (None: never expires); returns the plain token
    (shown once; only its SHA-256 is stored)."""
    if expires_in is not None and expires_in <= dt.timedelta(0):
        raise InvalidInputError(f"token lifetime {expires_in} is not positive; give e.g. 90d or never")
    token = new_token()
    expires_at = utcnow() + expires_in if expires_in is not None else None
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), prefix=token[:10], expires_at=expires_at))
    session.flush()
    return token


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def token_state(row: ApiToken, now: dt.datetime | None = None) -> str:
    """``active``, ``revoked`` or ``expired``."""
    if row.revoked:
        return "revoked"
    if row.expires_at is not None and _aware(row.expires_at) <= (now or utcnow()):
        return "expired"
    return "active"


def authenticate(session: Session, token: str, *, now: dt.datetime | None = None) -> ApiToken:
    """The valid :class:`ApiToken` row of ``token``; :class:`AuthenticationError` saying why not otherwise
    (unknown, revoked, expired, or its user deactivated)."""
    hint = token_hint(token)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None:
        raise AuthenticationError(f"API token {hint!r} is unknown; check it was copied whole, or ask for a new one")
    state = token_state(row, now)
    if state == "revoked":
        when = f" on {_aware(row.revoked_at):%Y-%m-%d %H:%M} UTC" if row.revoked_at else ""
        raise AuthenticationError(f"API token {hint!r} was revoked{when}; ask an administrator for a new one")
    if state == "expired":
        expired_at = _aware(row.expires_at or utcnow())  # set: token_state says expired
        raise AuthenticationError(
            f"API token {hint!r} expired on {expired_at:%Y-%m-%d %H:%M} UTC; "
            "ask an administrator for a new one (soilwatch admin new-token)"
        )
    if not row.user.active:
        raise AuthenticationError(f"the user of API token {hint!r} is deactivated; ask an administrator")
    return row


#: ``last_used_at`` is written at most this often per token: a write per request would cost more than it tells.
LAST_USED_RESOLUTION = dt.timedelta(hours=1)


def note_token_use(session: Session, row: ApiToken, *, now: dt.datetime | None = None) -> bool:
    """Set ``row.last_used_at`` when it is unset or older than :data:`LAST_USED_RESOLUTION`, and commit.

    Best effort: a database that is busy or read-only just now must not fail the request (logged, rolled
    back). Returns True when the time was written."""
    now = now or utcnow()
    if row.last_used_at is not None and now - _aware(row.last_used_at) < LAST_USED_RESOLUTION:
        return False
    try:
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == row.id)
            .where(or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < now - LAST_USED_RESOLUTION))
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        session.commit()
    except OperationalError as exc:
        session.rollback()
        log.warning("could not record the use of token %s: %s", row.prefix, str(exc).splitlines()[0])
        return False
    return True


def user_for_token(session: Session, token: str) -> User | None:
    """The active user owning a valid (not revoked, not expired) ``token``, or None."""
    try:
        return authenticate(session, token).user
    except AuthenticationError:
        return None


def revoke_token(session: Session, row: ApiToken, by: User | None, *, reason: str | None = None) -> bool:
    """Revoke ``row`` (audited); False if it already was."""
    if row.revoked:
        return False
    row.revoked = True
    row.revoked_at = utcnow()
    audit.record(session, by, row, "token_revoked", after={"user_id": row.user_id, "prefix": row.prefix}, reason=reason)
    session.flush()
    return True


def find_token(session: Session, ident: str) -> ApiToken:
    """The token with id ``ident`` (digits) or whose shown prefix starts with ``ident`` (unique)."""
    if ident.isdigit():
        row = session.get(ApiToken, int(ident))
        if row is None:
            raise NotFoundError(f"no API token with id {ident!r}; list them with soilwatch admin list-tokens NAME")
        return row
    if len(ident) < 6:
        raise InvalidInputError(f"token prefix {ident!r} is too short; give at least 6 characters, e.g. sw_Ab1")
    rows = session.scalars(select(ApiToken).where(ApiToken.prefix.startswith(ident[:10]))).all()
    rows = [r for r in rows if r.prefix.startswith(ident[:10])]
    if not rows:
        raise NotFoundError(f"no API token starts with {ident!r}; list them with soilwatch admin list-tokens NAME")
    if len(rows) > 1:
        raise ConflictError(f"{len(rows)} tokens start with {ident!r}; give its id (soilwatch admin list-tokens NAME)")
    return rows[0]


def user_named(session: Session, name: str) -> User:
    """The user called ``name``; NotFoundError naming the fix otherwise."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFoundError(f"no user {name!r}; create it with soilwatch admin create-user")
    return user


def _pick(columns: list[str], candidates: tuple[str, ...], what: str, path: Path) -> str:
    folded = {c.casefold(): c for c in columns}
    for cand in candidates:
        if cand.casefold() in folded:
            return folded[cand.casefold()]
    raise InvalidInputError(
        f"{path.name!r} has no {what} column; expected one of {', '.join(candidates)}, found {', '.join(columns)}"
    )


def import_districts(session: Session, path: Path) -> tuple[int, int]:
    """Create or update districts (code, name, boundary) from a vector file; returns (created, updated)."""
    try:
        frame = gpd.read_file(path)
    except Exception as exc:
        raise ImportFormatError(f"cannot read district file {str(path)!r}: {exc}") from exc
    code_col = _pick(list(frame.columns), CODE_FIELDS, "district code", path)
    name_col = _pick(list(frame.columns), NAME_FIELDS, "district name", path)
    if frame.crs is not None and frame.geometry is not None:
        frame = frame.to_crs(WGS84)
    created = updated = 0
    for _, row in frame.iterrows():
        code = str(row[code_col]).strip()
        if code.endswith(".0"):  # numeric codes read as floats
            code = code[:-2]
        district = session.get(District, code)
        if district is None:
            district = District(code=code, name=str(row[name_col]).strip())
            session.add(district)
            created += 1
        else:
            district.name = str(row[name_col]).strip()
            updated += 1
        geom = row.geometry
        if geom is not None and not geom.is_empty:
            set_geometry(district, geom if geom.is_valid else geom.buffer(0))
    session.flush()
    return created, updated
