"""Where units run: local processes (default) or a Dask distributed cluster. Both retry a failing unit.

An executor takes a plan and the cells still to do and calls ``on_result(outcome)`` on the calling
thread for each one as it finishes — done with its fragments, or failed after ``max_attempts`` tries.
A worker that dies (out of memory, killed) costs its units one attempt; they are run again elsewhere.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

from service.nightly import units as _units
from service.nightly.errors import NightlyError
from service.nightly.units import Cell, UnitResult, init_worker, run_unit

__all__ = [
    "ExecutorError", "Outcome", "UnitExecutor", "SerialExecutor", "LocalExecutor", "DaskExecutor", "make_executor"
]

log = logging.getLogger(__name__)


class ExecutorError(NightlyError, RuntimeError):
    """The workers cannot run units at all (they die at start, the cluster is gone)."""


@dataclass(frozen=True)
class Outcome:
    cell: Cell
    attempts: int
    result: UnitResult | None = None
    error: str | None = None


OnResult = Callable[[Outcome], None]


class UnitExecutor(Protocol):
    workers: int

    def run(self, plan: Any, cells: list[Cell], on_result: OnResult, *, max_attempts: int) -> None: ...

    def close(self) -> None: ...


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:500]


class SerialExecutor:
    """Units one after the other in this process (small scans, debugging, tests)."""

    workers = 1

    def run(self, plan: Any, cells: list[Cell], on_result: OnResult, *, max_attempts: int) -> None:
        for cell in cells:
            for attempt in range(1, max_attempts + 1):
                try:
                    result = _units.run_unit(plan, cell)
                except Exception as exc:
                    if attempt < max_attempts:
                        log.warning("unit %s failed (attempt %d of %d): %s; retrying", cell, attempt, max_attempts,
                                    _describe(exc))  # fmt: skip
                        continue
                    on_result(Outcome(cell, attempt, error=_describe(exc)))
                    break
                on_result(Outcome(cell, attempt, result=result))
                break

    def close(self) -> None:
        pass


class LocalExecutor:
    """A pool of ``workers`` processes (forkserver: fresh, thread-free children), one compute thread each."""

    def __init__(self, workers: int | None = None, *, task: Callable[[Any, Cell], UnitResult] = run_unit) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.task = task  # a module-level function (it is pickled by name); tests swap in a faulty one
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["service.nightly.units", "detector.pipeline"])
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=init_worker, initargs=(1,))

    def run(self, plan: Any, cells: list[Cell], on_result: OnResult, *, max_attempts: int) -> None:
        queue = [(c, 1) for c in cells]
        queue.reverse()  # pop() from the end keeps the original order
        # Units in flight when a worker process died: one of them may have killed it (out of memory). They run
        # again one at a time, so a death is charged to the unit that caused it and never to its neighbours.
        suspects: list[tuple[Cell, int]] = []
        running: dict[Future[UnitResult], tuple[Cell, int]] = {}
        breaks = 0  # pool deaths in a row without one result: a pool that cannot even start must not loop for ever
        while queue or suspects or running:
            if self._pool is None:
                if breaks > max_attempts + 2 * self.workers + 2:
                    raise ExecutorError(f"the worker processes died {breaks} times in a row without finishing a unit; "
                                        "check memory and the log of the workers")  # fmt: skip
                self._pool = self._new_pool()
            source, limit = (suspects, 1) if suspects else (queue, 2 * self.workers)
            broken = False
            while source and len(running) < limit:
                cell, attempt = source.pop()
                try:
                    running[self._pool.submit(self.task, plan, cell)] = (cell, attempt)
                except BrokenProcessPool:
                    source.append((cell, attempt))
                    broken = True
                    break
            done, _ = wait(running, return_when=FIRST_COMPLETED) if running else (set(), set())
            isolated = len(running) == 1
            for fut in done:
                cell, attempt = running.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    broken = True
                    if isolated:  # it ran alone: it killed its worker
                        self._retry(cell, attempt, "its worker process died (out of memory?)", suspects, on_result,
                                    max_attempts)  # fmt: skip
                    else:
                        suspects.append((cell, attempt))
                    continue
                except Exception as exc:
                    self._retry(cell, attempt, _describe(exc), queue, on_result, max_attempts)
                    continue
                breaks = 0
                on_result(Outcome(cell, attempt, result=result))
            if broken:
                breaks += 1
                suspects.extend(running.values())
                running.clear()
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    @staticmethod
    def _retry(cell: Cell, attempt: int, error: str, queue: list[tuple[Cell, int]], on_result: OnResult,
               max_attempts: int) -> None:  # fmt: skip
        if attempt < max_attempts:
            log.warning("unit %s failed (attempt %d of %d): %s; retrying", cell, attempt, max_attempts, error)
            queue.append((cell, attempt + 1))
        else:
            on_result(Outcome(cell, attempt, error=error))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor:
    """Units as tasks on a Dask distributed cluster; results come back here and are stored here.

    The plan (a few kB) travels with each task, so no worker holds state another one needs. Dask itself
    re-runs the tasks of a worker that dies (up to its ``allowed-failures``); a task that still fails
    costs the unit one of our attempts.
    """

    def __init__(self, address: str | None = None, *, client: Any = None) -> None:
        from distributed import Client

        self._own = client is None
        self.client = client if client is not None else Client(address, timeout="30s")
        self.workers = max(1, len(self.client.scheduler_info(n_workers=-1).get("workers", {})))

    def run(self, plan: Any, cells: list[Cell], on_result: OnResult, *, max_attempts: int) -> None:
        from distributed import as_completed

        index: dict[Any, tuple[Cell, int]] = {}

        def submit(cell: Cell, attempt: int) -> Any:
            fut = self.client.submit(run_unit, plan, cell, pure=False, retries=0)
            index[fut.key] = (cell, attempt)
            return fut

        pending = as_completed([submit(c, 1) for c in cells])
        for fut in pending:
            cell, attempt = index.pop(fut.key)
            try:
                result = fut.result()
            except Exception as exc:
                error = _describe(exc)
                if attempt < max_attempts:
                    log.warning("unit %s failed (attempt %d of %d): %s; retrying", cell, attempt, max_attempts, error)
                    pending.add(submit(cell, attempt + 1))
                else:
                    on_result(Outcome(cell, attempt, error=error))
                continue
            finally:
                fut.release()
            on_result(Outcome(cell, attempt, result=result))

    def close(self) -> None:
        if self._own:
            self.client.close()


def make_executor(*, scheduler: str | None = None, workers: int | None = None) -> UnitExecutor:
    """Dask when a scheduler is given; else local processes (or this process alone for ``workers=1``)."""
    if scheduler:
        return DaskExecutor(scheduler)
    return SerialExecutor() if workers == 1 else LocalExecutor(workers)
