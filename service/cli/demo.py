"""``soilwatch demo-service``: the whole supervision job on demo data, ending with the suspected violations."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["demo_service", "print_patches"]


def demo_service(
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Service data folder (default SOILWATCH_DATA_DIR, soilwatch-data); uses DIR/demo."
    ),
    size: int = typer.Option(2048, min=1536, max=8192, help="Demo scene size in pixels (square, 1 m)."),
    seed: int = typer.Option(7, help="Seed of the synthetic scene."),
    rows: int = typer.Option(25, min=1, help="Rows of the table of suspected violations."),
) -> None:
    """Demo of the supervision service: imagery, project list, districts → scan → matching → table.

    Makes demo imagery near 蓟州区 (120225), a GBK zipped-Shapefile approved-project list built around
    the scene's construction sites (plus one project known only by a point, in a CSV), and a district
    boundary file; creates an admin, a supervisor and an inspector (their API tokens are printed);
    imports everything, uploads the two tiles and runs a scan through the service's own API, then
    prints the suspected violations (疑似违法违规图斑) and how to review them on the map or in the API docs.

    The demo keeps its own SQLite database in DATA_DIR/demo and resets it on every run (the imagery
    in DATA_DIR/demo/inputs is reused); SOILWATCH_DATABASE_URL is ignored, your data is not touched.

    Example:

    \b
      soilwatch demo-service --rows 40
    """
    from detector.cli.progress import tile_progress
    from service.core.config import get_settings
    from service.demo import DEMO_OVERRIDES, run_demo

    # Pipes and CI logs get a readable table too (rich would fall back to 80 columns).
    console = Console() if sys.stdout.isatty() else Console(width=150)
    for category, pattern in ((PendingDeprecationWarning, ""), (RuntimeWarning, ".*laundered field name")):
        warnings.filterwarnings("ignore", message=pattern, category=category)  # library noise, not the user's concern
    quiet = logging.getLogger().level > logging.WARNING
    demo_dir = (data_dir or get_settings().data_dir) / "demo"
    console.print(f"demo service data in {demo_dir}/ (database reset; imagery in {demo_dir / 'inputs'} reused)")
    with (
        tile_progress("making imagery", enabled=not quiet, unit="blocks") as imagery,
        tile_progress("scanning", enabled=not quiet, unit="‰") as scanning,
    ):
        result = run_demo(
            demo_dir,
            size=size,
            seed=seed,
            imagery_progress=imagery,
            scan_progress=lambda fraction: scanning(int(fraction * 1000), 1000),
            log=lambda message: console.print(f"  {message}"),
        )
    scan = result.scan
    console.print(f"  scan {scan['id']} {scan['status']}: {scan['message']}")
    if DEMO_OVERRIDES:
        console.print(f"  (demo thresholds: {', '.join(f'{k} = {v:g}' for k, v in sorted(DEMO_OVERRIDES.items()))})")
    print_patches(result.patches, result.projects, rows=rows, console=console)
    console.print("\nthe planted cases (project → what the scan made of its site):")
    for project, patch in result.planted:
        got = patch["category"] if patch else "not detected"
        mark = "as planted" if got == project.expected else "DIFFERS from the plan"
        console.print(f"  {project.name} ({project.how}): {got} — {mark}", markup=False)
    console.print("\nAPI tokens (shown once; stored hashed):")
    for name, token in result.tokens.items():
        console.print(f"  {name:16} {token}")
    env = " ".join(
        [*(f"SOILWATCH_{k.upper()}={v:g}" for k, v in DEMO_OVERRIDES.items()), f"SOILWATCH_DATA_DIR={demo_dir}"]
    )
    if os.environ.get("SOILWATCH_DATABASE_URL"):
        env = f"env -u SOILWATCH_DATABASE_URL {env}"
    console.print(
        "\nreview them on the map or in the API:\n"
        f"  {env} {_command()} serve\n"
        "  open http://127.0.0.1:8000/map and sign in with the demo-inspector token (the review map, 一张图),\n"
        "  or http://127.0.0.1:8000/docs, press Authorize and paste the token; then try\n"
        f"  GET /api/v1/patches?scan_id={scan['id']}&category=suspected_unapproved,\n"
        "  GET /api/v1/patches/{id}/chips/after.png and POST /api/v1/patches/{id}/reviews (with If-Match).\n"
        f"(done in {result.seconds:.0f} s)",
        soft_wrap=True,
    )


def print_patches(
    patches: list[dict[str, Any]], projects: dict[int, dict[str, Any]], *, rows: int, console: Console
) -> None:
    """The table of suspected violations (all categories, highest priority first) and a count per category."""
    counts: dict[str, int] = {}
    for patch in patches:
        counts[patch["category"]] = counts.get(patch["category"], 0) + 1
    from service.vocab import CATEGORY_LABELS, Category

    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    summary = ", ".join(f"{n} {CATEGORY_LABELS.get(Category(c), c) if c else ''} {c}" for c, n in ranked)
    console.print(f"\n{len(patches)} disturbance patches (扰动图斑) judged against the approved-project list:")
    console.print(f"  {summary}")
    table = Table(
        "图斑 patch", "类别 category", "面积 亩", "lon", "lat", "项目 matched project", "conf.",
        title="suspected violations (疑似违法违规图斑), by priority; every category shown",
    )  # fmt: skip
    for patch in _pick_rows(patches, rows):
        table.add_row(
            patch["patch_code"],
            f"{patch['category_label'] or ''}\n{patch['category']}",
            f"{patch['area_mu']:.2f}",
            f"{patch['lon']:.5f}",
            f"{patch['lat']:.5f}",
            _project_cell(patch, projects),
            f"{patch['confidence']:.2f}" if patch["confidence"] is not None else "",
        )
    console.print(table)
    suspected = sum(1 for p in patches if p["category"] not in ("compliant", "too_small"))
    if suspected > rows:
        console.print(f"… {suspected - rows} more suspected (--rows, or GET /api/v1/patches in the API)")


def _pick_rows(patches: list[dict[str, Any]], rows: int) -> list[dict[str, Any]]:
    """Up to ``rows`` suspected patches, every suspected category represented, in the API's priority order."""
    suspected = [p for p in patches if p["category"] not in ("compliant", "too_small")]
    groups: dict[str, list[dict[str, Any]]] = {}
    for patch in suspected:  # already sorted: priority, then area
        groups.setdefault(patch["category"], []).append(patch)
    share = max(1, rows // max(len(groups), 1))
    chosen = [p for group in groups.values() for p in group[:share]]
    rest = [p for p in suspected if p not in chosen]
    chosen += rest[: max(0, rows - len(chosen))]
    order = {id(p): i for i, p in enumerate(suspected)}
    return sorted(chosen, key=lambda p: order[id(p)])


def _project_cell(patch: dict[str, Any], projects: dict[int, dict[str, Any]]) -> str:
    if patch["matches"]:
        best = projects.get(patch["matches"][0]["project_id"], {})
        outside = f", {patch['outside_share']:.0%} outside" if patch["category"] == "suspected_out_of_bounds" else ""
        return f"{best.get('name', '?')}\n{best.get('code', '?')}{outside}"
    near = projects.get(patch["nearest_project_id"]) if patch["nearest_project_id"] else None
    if near is not None and patch["nearest_distance_m"] is not None:
        return f"none; {near['name']}\nis {patch['nearest_distance_m']:.0f} m away"
    return "none"


def _command() -> str:
    """How the user called us (``.venv/bin/soilwatch`` from dev/demo.sh), so the printed command runs as is."""
    called = sys.argv[0] if sys.argv else ""
    return called if called.endswith("soilwatch") else "soilwatch"
