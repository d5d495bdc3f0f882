"""Registers the models that ship with soilwatch. Import for the side effect only."""

from __future__ import annotations

from typing import Any

from models.registry import register_model
from models.spectral import SpectralBaseline, SpectralConfig


@register_model("baseline")
def _baseline(*, config: SpectralConfig | dict[str, Any] | None = None) -> SpectralBaseline:
    if isinstance(config, dict):
        config = SpectralConfig.from_mapping(config)
    return SpectralBaseline(config=config)
