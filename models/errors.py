"""Errors of the models package."""

from __future__ import annotations

__all__ = ["ModelError", "UnknownModelError", "WeightsError", "BandsError"]


class ModelError(Exception):
    """Root of every error raised by :mod:`models`."""


class UnknownModelError(ModelError, KeyError):
    """No model is registered under that name."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown model"


class WeightsError(ModelError, OSError):
    """A weights file is missing, corrupt, or its hash does not match the registry."""


class BandsError(ModelError, ValueError):
    """The image does not have the bands the model needs."""
