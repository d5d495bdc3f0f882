"""Run one benchmark command in a fresh interpreter and measure it (``bench_detect.py``, ``bench_selftrain.py``).

The command runs as the child of a small wrapper interpreter, so ``ru_maxrss`` of ``RUSAGE_CHILDREN`` in that
wrapper is this command's peak RSS alone, whatever the benchmark process itself holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence

_WRAPPER = (
    "import resource,subprocess,sys;subprocess.run(sys.argv[1:],check=True);"
    "r=resource.getrusage(resource.RUSAGE_CHILDREN);print(r.ru_maxrss,r.ru_utime+r.ru_stime)"
)


def run_measured(cmd: Sequence[str]) -> dict:
    """Run ``cmd`` to completion (a failure raises ``CalledProcessError``) and return ``wall_s``, ``cpu_s`` (user +
    system, all threads), ``peak_rss_mb`` and ``load_avg_1min`` (before and after): on a shared machine the CPU
    time says what the run needed, the wall time what it got."""
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak_kb, cpu_s = res.stdout.strip().splitlines()[-1].split()
    return {"wall_s": wall, "cpu_s": round(float(cpu_s), 1), "peak_rss_mb": round(int(peak_kb) / 1024),
            "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}  # fmt: skip
