"""``soilwatch admin``: users, tokens and districts."""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["admin_app"]

admin_app = typer.Typer(help="Manage users, API tokens and districts.", no_args_is_help=True)


def _sessionmaker() -> sessionmaker[Session]:
    from service.core.config import get_settings
    from service.db import make_engine, make_sessionmaker

    return make_sessionmaker(make_engine(get_settings()))


@admin_app.command("create-user")
def create_user(
    name: str = typer.Argument(..., help="User name (unique)."),
    role: str = typer.Option(..., "--role", "-r", help="admin, supervisor, inspector or viewer."),
    district: list[str] = typer.Option([], "--district", "-d", help="District code; repeat for several."),
    all_districts: bool = typer.Option(False, "--all-districts", help="City-wide: sees every district."),
) -> None:
    """Create a user and print an API token ONCE (it is stored hashed).

    Example: soilwatch admin create-user 张三 --role supervisor --district 120225
    """
    from service import users
    from service.db import session_scope

    with session_scope(_sessionmaker()) as session:
        user, token = users.create_user(session, name, role, district, all_districts=all_districts)
        typer.echo(f"created user {user.name!r} ({user.role}); API token (shown once, keep it safe):", err=True)
        typer.echo(token)


@admin_app.command("new-token")
def new_token(name: str = typer.Argument(..., help="User name.")) -> None:
    """Issue another API token for an existing user and print it once.

    Example: soilwatch admin new-token 张三
    """
    from sqlalchemy import select

    from service import users
    from service.db import session_scope
    from service.errors import NotFoundError
    from service.models import User

    with session_scope(_sessionmaker()) as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise NotFoundError(f"no user {name!r}; create it with soilwatch admin create-user")
        typer.echo(users.issue_token(session, user))


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
