"""``soilwatch serve``: options reach uvicorn; --workers and --reload exclude each other."""

from __future__ import annotations

import typer
import uvicorn
from typer.testing import CliRunner

from service.cli.serve import serve
from service.core.config import get_settings

runner = CliRunner()
app = typer.Typer()
app.command()(serve)


def test_workers_reach_uvicorn(monkeypatch):
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: calls.append((target, kw)))
    get_settings.cache_clear()
    result = runner.invoke(app, ["--no-upgrade", "--port", "8123", "--workers", "3"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    ((target, kw),) = calls
    assert target == "service.main:create_app" and kw["factory"] and kw["workers"] == 3 and kw["port"] == 8123


def test_workers_do_not_go_with_reload(monkeypatch):
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: None)
    result = runner.invoke(app, ["--no-upgrade", "--reload", "--workers", "2"])
    assert result.exit_code == 2 and "--workers 2 does not go with --reload" in result.output
    assert runner.invoke(app, ["--no-upgrade", "--workers", "0"]).exit_code == 2
