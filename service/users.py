"""User, token and district management shared by the CLI and the API (no HTTP here)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core.security import hash_token, new_token
from service.errors import ConflictError, ImportFormatError, InvalidInputError, NotFoundError
from service.geometry import WGS84
from service.models import ApiToken, District, User, set_geometry
from service.vocab import Role

__all__ = ["create_user", "issue_token", "user_for_token", "import_districts", "CODE_FIELDS", "NAME_FIELDS"]

CODE_FIELDS = ("code", "district_code", "区划代码", "行政区代码", "行政区划代码", "区县代码", "PAC", "adcode", "XZQDM")
NAME_FIELDS = ("name", "district_name", "名称", "区划名称", "行政区名称", "区县名称", "NAME", "XZQMC")


def create_user(
    session: Session, name: str, role: str, district_codes: list[str], *, all_districts: bool = False
) -> tuple[User, str]:
    """Create a user and a first token; returns ``(user, plain_token)`` — the token is not stored."""
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
    return user, issue_token(session, user)


def issue_token(session: Session, user: User) -> str:
    """A new token for ``user``; returns the plain token (shown once)."""
    token = new_token()
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), prefix=token[:10]))
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    """The active user owning ``token``, or None."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token), ApiToken.revoked.is_(False)))
    if row is None or not row.user.active:
        return None
    return row.user


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
