"""The interface every change model implements, whatever it is made of.

The detector talks to models through :class:`ChangeModel` only, with numpy arrays, so that the
spectral baseline (pure numpy) and learned networks (torch) are interchangeable and the detector
never needs to know which one it runs.

Input contract (``predict``):
    ``x``: float32 array ``(batch, dates, bands, h, w)``; ``dates`` is 2 (before, after) or 1
    (after only, single-date bare-soil mode). Values are reflectance-like in [0, 1]: the detector
    divides every band by one common gain (the 99th percentile of the brightest visible band of
    the *before* image; zero stays zero, so band ratios and NDVI survive) and maps the after image
    onto the before image with a per-band gain and offset first, so both dates share one scale
    (:mod:`detector.radiometry`; training and evaluation use the same functions).
    Pixels outside the valid area are 0 and must not be trusted.
    ``bands``: the name of each band along axis 2, from :data:`BAND_NAMES`, always starting with
    ``("red", "green", "blue")``; ``"nir"``, ``"swir1"``, ``"swir2"`` follow when present.
Output: float32 array ``(batch, h, w)``, probability of new disturbance in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["BAND_NAMES", "RGB", "ChangeModel", "ModelInfo"]

#: Band names the detector understands, in the order it hands them to models.
BAND_NAMES: tuple[str, ...] = ("red", "green", "blue", "nir", "swir1", "swir2")
RGB: tuple[str, ...] = ("red", "green", "blue")


@dataclass(frozen=True)
class ModelInfo:
    """What a caller needs to know about a model to run it well.

    ``margin_px`` is the context a prediction needs on each side: the detector reads that much
    extra around every window and throws it away, so windows join without seams.
    ``resolution_m`` is the ground-resolution range (metres per pixel) the model was made for.
    """

    name: str
    version: str
    required_bands: tuple[str, ...] = RGB
    optional_bands: tuple[str, ...] = ()
    threshold: float = 0.5
    margin_px: int = 16
    tile_size: int = 512
    batch_size: int = 4
    single_date: bool = False
    resolution_m: tuple[float, float] = (0.3, 10.0)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold!r}")
        if self.margin_px < 0 or self.tile_size <= 2 * self.margin_px:
            raise ValueError(
                f"tile_size {self.tile_size!r} must exceed twice margin_px {self.margin_px!r}"
            )
        missing = [b for b in RGB if b not in self.required_bands]
        if missing:
            raise ValueError(f"every model takes RGB; required_bands lacks {missing!r}")

    @property
    def label(self) -> str:
        """``name@version``, as written into every patch."""
        return f"{self.name}@{self.version}"


@runtime_checkable
class ChangeModel(Protocol):
    """A model the detector can run; see the module docstring for the array contract."""

    info: ModelInfo

    def predict(self, x: np.ndarray, bands: Sequence[str]) -> np.ndarray:
        """Probability of new disturbance, ``(batch, h, w)`` float32, for ``x`` ``(batch, dates, bands, h, w)``."""
        ...
