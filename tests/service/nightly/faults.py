"""Faulty unit tasks for the executor tests; module-level so that worker processes can import them."""

from __future__ import annotations

import os

from service.nightly.units import Cell, UnitResult, run_unit

#: The unit whose worker process dies, as one killed by the kernel for using too much memory.
DEADLY = (128, 0)


def die_on_one_unit(plan, cell: Cell) -> UnitResult:
    if cell[:2] == DEADLY:
        os._exit(137)
    return run_unit(plan, cell)
