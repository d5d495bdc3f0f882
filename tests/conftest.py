"""Shared pytest fixtures (helpers live in tests/fixtures.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures import field_scene, write_tif


@pytest.fixture
def tif(tmp_path: Path) -> Callable[..., Path]:
    """``tif(name, data, **kw)`` writes a GeoTIFF under tmp_path (see :func:`write_tif`)."""

    def make(name: str, data: np.ndarray, **kw: Any) -> Path:
        return write_tif(tmp_path / name, data, **kw)

    return make


@pytest.fixture
def pair(tif: Callable[..., Path]) -> tuple[Path, Path]:
    """A 240 x 240 px, 1 m, 4-band pair in a Gauss-Kruger zone with one 40 x 40 m new bare square."""
    before, after = field_scene()
    return tif("2023-06-01_before.tif", before), tif("2024-06-01_after.tif", after)
