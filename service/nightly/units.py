"""Work units: what runs on a worker (a local process or a Dask worker) and how its result travels.

:func:`run_unit` is the task: plan + window in, :class:`UnitResult` out (fragments encoded as
compressed JSON with WKB geometries — exact, compact, and storable as they are in ``scan_units``).
Workers never touch the database; the scheduler side stores what they return.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detector.pipeline import DetectionPlan
    from detector.vectorize import Fragment

__all__ = ["UnitResult", "Cell", "run_unit", "encode_fragments", "decode_fragments", "init_worker", "cell_of"]

#: ``(col_off, row_off, width, height)`` of a unit on the plan's grid.
Cell = tuple[int, int, int, int]

_MODELS: dict[str, Any] = {}
_MODELS_LOCK = threading.Lock()


@dataclass(frozen=True)
class UnitResult:
    cell: Cell
    fragments: bytes
    n_fragments: int
    seconds: float
    worker: str


def cell_of(window: Any) -> Cell:
    return (int(window.col_off), int(window.row_off), int(window.width), int(window.height))


def encode_fragments(fragments: list[Fragment]) -> bytes:
    rows = [[f.geometry.wkb_hex, int(f.n_px), float(f.prob_sum), float(f.prob_max), bool(f.on_seam)] for f in fragments]
    return zlib.compress(json.dumps(rows, separators=(",", ":")).encode(), 6)


def decode_fragments(blob: bytes | None) -> list[Fragment]:
    import shapely

    from detector.vectorize import Fragment

    if not blob:
        return []
    return [
        Fragment(geometry=shapely.from_wkb(bytes.fromhex(g)), n_px=n, prob_sum=s, prob_max=m, on_seam=e)
        for g, n, s, m, e in json.loads(zlib.decompress(blob))
    ]


def init_worker(threads: int = 1) -> None:
    """Process initialiser: one compute thread per process, so N processes use N cores, not N²."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import sys

    os.environ.setdefault("SOILWATCH_TORCH_THREADS", str(threads))  # read by models.changenet when it loads
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(os.environ["SOILWATCH_TORCH_THREADS"]))


def _model(plan: DetectionPlan) -> Any:
    from detector.pipeline import prepare_model

    key = json.dumps([plan.options.model, plan.options.model_config, plan.options.device], sort_keys=True, default=str)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = prepare_model(plan.options)
        return _MODELS[key]


def run_unit(plan: DetectionPlan, cell: Cell) -> UnitResult:
    """Detect on one unit; the model is loaded once per process and kept."""
    from rasterio.windows import Window

    from detector.pipeline import detect_unit

    t0 = time.perf_counter()
    fragments = detect_unit(plan, Window(*cell), model=_model(plan), workers=1)
    return UnitResult(
        cell=cell,
        fragments=encode_fragments(fragments),
        n_fragments=len(fragments),
        seconds=time.perf_counter() - t0,
        worker=f"{socket.gethostname()[:60]}:{os.getpid()}",
    )
