"""Registers the models that ship with soilwatch. Import for the side effect only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.base import ChangeModel
from models.registry import register_model, register_weights_loader
from models.spectral import SpectralBaseline, SpectralConfig


@register_model("baseline")
def _baseline(*, config: SpectralConfig | dict[str, Any] | None = None) -> SpectralBaseline:
    if isinstance(config, dict):
        config = SpectralConfig.from_mapping(config)
    return SpectralBaseline(config=config)


#: What a ChangeNet ``--model-config`` mapping may hold: ``scales``, the list of scales each window runs at
#: (e.g. ``[1.0]`` for one scale; see :class:`models.changenet.TorchChangeModel`).
CHANGENET_SETTINGS = frozenset({"scales"})


def _changenet_settings(config: dict[str, Any] | None, scales: Sequence[float] | None) -> dict[str, Any]:
    """The wrapper settings in a ChangeNet ``--model-config`` mapping (:data:`CHANGENET_SETTINGS`); anything else is
    a :class:`ValueError`."""
    config = dict(config or {})
    unknown = sorted(set(config) - CHANGENET_SETTINGS)
    if unknown:
        raise ValueError(
            f"unknown changenet setting(s) {unknown!r}; the only one is 'scales' (e.g. scales: [1.0, 0.5])"
        )
    if scales is not None:
        config["scales"] = scales
    return config


@register_model("changenet")
def _changenet(
    *, device: str | None = None, num_threads: int | None = None, config: dict[str, Any] | None = None,
    scales: Sequence[float] | None = None,
) -> ChangeModel:
    """The shipped ChangeNet weights (models/weights/changenet.pt, sha256 checked on load)."""
    from models.changenet import SHIPPED_WEIGHTS, load_change_model  # torch is imported only when asked for

    return load_change_model(
        SHIPPED_WEIGHTS, device=device, num_threads=num_threads, **_changenet_settings(config, scales)
    )


@register_weights_loader(".pt")
def _changenet_weights(
    path: Path, *, device: str | None = None, num_threads: int | None = None, config: dict[str, Any] | None = None,
    scales: Sequence[float] | None = None,
) -> ChangeModel:
    """A ChangeNet weights file written by 'soilwatch train' (sha256 checked against its .json sidecar)."""
    from models.changenet import load_change_model

    return load_change_model(path, device=device, num_threads=num_threads, **_changenet_settings(config, scales))
