"""``--model auto`` (the default): the model the evidence says is better for the imagery at hand.

The learned model (``changenet``) beats the spectral baseline, held out, on the three sets at 0.5-2 m per
pixel and loses to it on the one 10 m Sentinel-2 set (``models/weights/MODEL_CARD.md``). So ``auto`` runs:

- ``changenet`` for two dates whose before image is at most :data:`LEARNED_MAX_RESOLUTION_M` per pixel;
- ``baseline`` for coarser imagery, for one date (the learned model has no single-date mode), and when a
  baseline configuration (``--model-config``) was given, since those settings are the baseline's.

A configuration that holds only ChangeNet settings (``scales``) is the learned model's: it goes with ``changenet``
and is left out, with a log line, where the baseline runs.

There is no labelled set between 2 and 10 m, so the 5 m limit is a judgement, not a measurement.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from detector.align import ground_resolution_m
from detector.io import inspect_raster

if TYPE_CHECKING:
    from detector.pipeline import DetectOptions

__all__ = ["AUTO", "LEARNED", "FALLBACK", "LEARNED_MAX_RESOLUTION_M", "choose_model", "resolve_options"]

log = logging.getLogger(__name__)

AUTO = "auto"
LEARNED = "changenet"
FALLBACK = "baseline"
#: ``auto`` runs the learned model on imagery at most this coarse (metres per pixel), else the baseline.
LEARNED_MAX_RESOLUTION_M = 5.0


def choose_model(resolution_m: float | None, *, two_dates: bool = True, has_config: bool = False) -> tuple[str, str]:
    """The model ``auto`` runs, and why (one line for the log and the CLI)."""
    if not two_dates:
        return FALLBACK, f"one date: {LEARNED} needs two, so the {FALLBACK} runs"
    if has_config:
        return FALLBACK, f"a baseline configuration was given, so the {FALLBACK} runs"
    if resolution_m is not None and resolution_m > LEARNED_MAX_RESOLUTION_M:
        return FALLBACK, (
            f"{resolution_m:.1f} m pixels are coarser than {LEARNED_MAX_RESOLUTION_M:g} m, where {LEARNED} is not "
            f"better than the {FALLBACK}; the {FALLBACK} runs"
        )
    at = f"{resolution_m:.2f} m" if resolution_m is not None else "unknown resolution"
    return LEARNED, f"two dates at {at}: the learned model {LEARNED} runs"


def resolve_options(options: DetectOptions, before: str | Path | None) -> DetectOptions:
    """``options`` with ``model="auto"`` replaced by the chosen model name; any other name passes unchanged.

    Reads only the before image's header (its grid); a file that cannot be read is reported by the
    detector's usual checks, which run next.
    """
    if options.model != AUTO:
        return options
    resolution = None
    if before is not None:
        info = inspect_raster(before, bands=options.bands_before, limits=options.limits, name=str(before))
        resolution = ground_resolution_m(info.grid)
    from models.builtin import CHANGENET_SETTINGS

    config = options.model_config
    learned_config = bool(config) and set(config or {}) <= CHANGENET_SETTINGS
    name, why = choose_model(resolution, two_dates=before is not None, has_config=bool(config) and not learned_config)
    log.info("model auto: %s", why)
    if learned_config and name != LEARNED:
        log.info("model auto: the %s settings %s do not apply to the %s and are left out",
                 LEARNED, sorted(config or {}), name)
        return replace(options, model=name, model_config=None)
    return replace(options, model=name)
