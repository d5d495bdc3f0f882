"""The nightly batch scan (``soilwatch scan``): catalogue new imagery, pair it with earlier imagery,
detect unit by unit (local processes or a Dask cluster), merge, match, link, report — resumable.

Entry point: :func:`run_nightly`; see :mod:`service.nightly.runner` for the resumability rules.
"""

from service.nightly.config import NightlyOptions
from service.nightly.errors import InboxError, LockLostError, MosaicError, NightlyError, ScanLockedError
from service.nightly.executors import DaskExecutor, LocalExecutor, SerialExecutor, make_executor
from service.nightly.runner import RunResult, run_nightly

__all__ = [
    "NightlyOptions",
    "NightlyError",
    "ScanLockedError",
    "LockLostError",
    "InboxError",
    "MosaicError",
    "LocalExecutor",
    "SerialExecutor",
    "DaskExecutor",
    "make_executor",
    "RunResult",
    "run_nightly",
]
