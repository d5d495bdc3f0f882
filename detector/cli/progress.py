"""A rich progress bar for long detector runs (hidden for runs shorter than a second or when quiet)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

__all__ = ["tile_progress"]


@contextlib.contextmanager
def tile_progress(
    description: str, *, enabled: bool = True, unit: str = "tiles"
) -> Iterator[Callable[[int, int], None]]:
    """Yields a ``callback(done, total)``; the bar appears only after the first second of work."""
    console = Console(stderr=True)
    if not enabled or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    start = time.monotonic()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=None, visible=False)

        def update(done: int, total: int) -> None:
            visible = time.monotonic() - start > 1.0
            bar.update(task, completed=done, total=total, visible=visible)

        yield update
