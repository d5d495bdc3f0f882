"""The nightly scan on a real Dask ``LocalCluster`` (2 worker processes) with one worker killed mid-scan:
its units are redone and the patches are the same as an in-process run's, nothing lost or doubled."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.db import make_engine, make_sessionmaker
from service.models import ScanUnit
from service.nightly import DaskExecutor
from tests.service.nightly import inbox as world
from tests.service.nightly.helpers import fresh_sqlite, options, patch_rows, run

pytestmark = pytest.mark.slow


def test_a_local_cluster_gives_the_same_patches_even_when_a_worker_dies(sqlite_template, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    inbox = world.write_inbox(tmp_path / "inbox", broken=False)
    reference = fresh_sqlite(sqlite_template, tmp_path, "reference")
    run(reference, options(inbox, tmp_path / "work-ref", unit_px=128))
    expected = patch_rows(reference)
    assert len(expected) == len(world.SQUARES)

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1", silence_logs=40) as cluster:  # fmt: skip
        executor = DaskExecutor(cluster.scheduler_address)  # as `soilwatch scan --scheduler tcp://…` does
        assert executor.workers == 2
        try:
            pids = list(executor.client.run(os.getpid).values())
            killed: list[int] = []

            def kill_one_worker(outcome) -> None:
                if not killed:
                    killed.append(pids[0])
                    os.kill(pids[0], signal.SIGKILL)  # mid-scan: the other units are queued or running

            hit = fresh_sqlite(sqlite_template, tmp_path, "killed")
            result = run(hit, options(inbox, tmp_path / "work-killed", unit_px=128), executor, on_unit=kill_one_worker)
            assert killed and result.summary["failed_units"] == []
            engine = make_engine(hit)
            with make_sessionmaker(engine)() as session:
                units = session.scalars(select(ScanUnit)).all()
                assert len(units) == 20 and {u.status for u in units} == {"done"}
                assert session.scalar(select(func.count(func.distinct(ScanUnit.worker)))) >= 2
            engine.dispose()
            assert patch_rows(hit) == expected
        finally:
            executor.close()
