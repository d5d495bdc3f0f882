"""The ``soilwatch`` command: one thin group that collects subcommands from entry points.

Each package registers its commands under the ``soilwatch.commands`` entry-point group (see
pyproject.toml), as ``rio`` collects its plugins; nothing here imports a package directly, so no
package depends on the one above it.

Exit codes: 0 ok, 2 usage error, 1 any other failure. An error is one line on stderr unless
``--debug`` is given, which shows the traceback.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points

import click
import typer
from typer._click import exceptions as typer_click_exceptions

from soilwatch import __version__

__all__ = ["app", "main"]

ENTRY_POINT_GROUP = "soilwatch.commands"

app = typer.Typer(
    name="soilwatch",
    help="Soil-and-water-conservation remote-sensing supervision: find disturbance patches (扰动图斑) "
    "in before/after imagery and check them against the approved-project list.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: paragraphs are re-wrapped, [brackets] shown as written
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"soilwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output (-vv for debug)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    if quiet:
        level = logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    _state["debug"] = debug


def _load_commands() -> None:
    """Register every command of the entry-point group not registered yet (safe to call again)."""
    registered = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in registered:
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # one broken package must not take the whole command down
            logging.getLogger(__name__).debug("cannot load command %r", ep.name, exc_info=True)
            _add_broken(ep.name, f"{type(exc).__name__}: {exc}")
            continue
        if isinstance(obj, typer.Typer):
            app.add_typer(obj, name=ep.name)
        else:
            app.command(name=ep.name)(obj)


def _add_broken(name: str, reason: str) -> None:
    def broken() -> None:
        raise click.ClickException(f"the {name!r} command cannot be loaded ({reason}); reinstall soilwatch")

    app.command(name=name, help=f"[unavailable: {reason}]")(broken)


# typer 0.29 carries its own copy of click: catch both its exceptions and click's own.
_EXIT = (click.exceptions.Exit, typer.Exit)
_ABORT = (click.exceptions.Abort, typer.Abort)
_USAGE = (click.UsageError, typer_click_exceptions.UsageError)
_CLICK = (click.ClickException, typer_click_exceptions.ClickException)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (also used by tests)."""
    _load_commands()
    args = sys.argv[1:] if argv is None else argv
    _state["debug"] = "--debug" in args
    try:
        app(args=args, prog_name="soilwatch", standalone_mode=False)
    except _EXIT as exc:
        return int(exc.exit_code)
    except _ABORT:
        click.echo("Aborted.", err=True)
        return 1
    except _USAGE as exc:
        exc.show()
        return 2
    except _CLICK as exc:
        exc.show()
        return int(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except Exception as exc:
        if _state["debug"]:
            raise
        name = "" if _is_ours(exc) else f"{type(exc).__name__}: "
        click.echo(f"error: {name}{exc}", err=True)
        return 1
    return 0


def _is_ours(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in {"detector", "models", "training", "service"}


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
