"""``soilwatch admin``: users, tokens and districts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["admin_app"]

admin_app = typer.Typer(help="Manage users, API tokens and districts.", no_args_is_help=True)


def _sessionmaker() -> sessionmaker[Session]:
    from service.core.config import get_settings
    from service.db import make_engine, make_sessionmaker

    return make_sessionmaker(make_engine(get_settings()))


def _lifetime(expires_in: str | None) -> dt.timedelta | None:
    """``--expires-in``: ``90d``, ``12h``, ``30m``, a plain number of days, or ``never``; default: the
    setting ``token_lifetime_days``."""
    from service.core.config import get_settings

    if expires_in is None:
        days = get_settings().token_lifetime_days
        return dt.timedelta(days=days) if days is not None else None
    text = expires_in.strip().lower()
    if text in ("never", "none", "0"):
        return None
    units = {"d": "days", "h": "hours", "m": "minutes"}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "d")
    try:
        value = float(number)
    except ValueError:
        raise typer.BadParameter(f"{expires_in!r} is not a lifetime; give e.g. 90d, 12h or never") from None
    if value <= 0:
        raise typer.BadParameter(f"{expires_in!r} is not positive; give e.g. 90d, or never")
    return dt.timedelta(**{units[unit]: value})


_EXPIRES_IN_HELP = "Token lifetime: 90d, 12h, 30m or never (default: SOILWATCH_TOKEN_LIFETIME_DAYS, 90 days)."


def _expiry_note(lifetime: dt.timedelta | None) -> str:
    if lifetime is None:
        return "never expires"
    return f"expires {dt.datetime.now(dt.UTC) + lifetime:%Y-%m-%d %H:%M} UTC"


@admin_app.command("create-user")
def create_user(
    name: str = typer.Argument(..., help="User name (unique)."),
    role: str = typer.Option(..., "--role", "-r", help="admin, supervisor, inspector or viewer."),
    district: list[str] = typer.Option([], "--district", "-d", help="District code; repeat for several."),
    all_districts: bool = typer.Option(False, "--all-districts", help="City-wide: sees every district."),
    expires_in: str | None = typer.Option(None, "--expires-in", help=_EXPIRES_IN_HELP),
) -> None:
    """Create a user and print an API token ONCE (it is stored hashed).

    Example: soilwatch admin create-user 张三 --role supervisor --district 120225 --expires-in 90d
    """
    from service import users
    from service.db import session_scope

    lifetime = _lifetime(expires_in)
    with session_scope(_sessionmaker()) as session:
        user, token = users.create_user(session, name, role, district, all_districts=all_districts, expires_in=lifetime)
        typer.echo(
            f"created user {user.name!r} ({user.role}); API token ({_expiry_note(lifetime)}; shown once, keep it "
            "safe):",
            err=True,
        )
        typer.echo(token)


@admin_app.command("new-token")
def new_token(
    name: str = typer.Argument(..., help="User name."),
    expires_in: str | None = typer.Option(None, "--expires-in", help=_EXPIRES_IN_HELP),
) -> None:
    """Issue another API token for an existing user and print it once.

    Example: soilwatch admin new-token 张三 --expires-in 30d
    """
    from service import users
    from service.db import session_scope

    lifetime = _lifetime(expires_in)
    with session_scope(_sessionmaker()) as session:
        token = users.issue_token(session, users.user_named(session, name), expires_in=lifetime)
        typer.echo(f"API token for {name!r} ({_expiry_note(lifetime)}; shown once):", err=True)
        typer.echo(token)


@admin_app.command("list-tokens")
def list_tokens(name: str = typer.Argument(..., help="User name.")) -> None:
    """List a user's API tokens: id, prefix, state, created, expires, last used (never the tokens themselves).

    Example: soilwatch admin list-tokens 张三
    """
    from sqlalchemy import select

    from service import users
    from service.db import session_scope
    from service.models import ApiToken

    with session_scope(_sessionmaker()) as session:
        user = users.user_named(session, name)
        rows = session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)).all()
        typer.echo("id\tprefix\tstate\tcreated\texpires\tlast used")
        for row in rows:
            expires = f"{row.expires_at:%Y-%m-%d}" if row.expires_at else "never"
            used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never"
            typer.echo(
                f"{row.id}\t{row.prefix}\t{users.token_state(row)}\t{row.created_at:%Y-%m-%d}\t{expires}\t{used}"
            )


@admin_app.command("revoke-token")
def revoke_token(
    token: str | None = typer.Argument(None, help="Token id, or its first characters (at least 6, e.g. sw_Ab1)."),
    user: str | None = typer.Option(None, "--user", "-u", help="Revoke every token of this user instead."),
    reason: str | None = typer.Option(None, "--reason", help="Why (kept in the audit trail)."),
) -> None:
    """Revoke an API token (or all of a user's): it answers 401 from then on.

    Example: soilwatch admin revoke-token sw_Ab1xyz --reason "laptop lost"
    """
    from sqlalchemy import select

    from service import users
    from service.db import session_scope
    from service.models import ApiToken

    if (token is None) == (user is None):
        raise typer.BadParameter("give either a TOKEN (id or prefix) or --user NAME", param_hint="TOKEN / --user")
    with session_scope(_sessionmaker()) as session:
        if user is not None:
            owner = users.user_named(session, user)
            rows = list(session.scalars(select(ApiToken).where(ApiToken.user_id == owner.id)))
        else:
            rows = [users.find_token(session, token or "")]
        revoked = sum(
            users.revoke_token(session, row, None, reason=reason or "revoked with soilwatch admin") for row in rows
        )
    typer.echo(f"revoked {revoked} token(s); {len(rows) - revoked} already were")


@admin_app.command("import-districts")
def import_districts(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Vector file with code and name fields."),
) -> None:
    """Create or update districts (区/县) from a boundary file (GeoPackage, GeoJSON, Shapefile, zip).

    Fields: a code (code, 区划代码, 行政区代码 …) and a name (name, 名称, 区划名称 …).

    Example: soilwatch admin import-districts districts.geojson
    """
    from service import users
    from service.db import session_scope

    with session_scope(_sessionmaker()) as session:
        created, updated = users.import_districts(session, file)
    typer.echo(f"districts: {created} created, {updated} updated")
