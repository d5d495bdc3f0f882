"""Change models: the interface, the registry, the spectral baseline and learned networks."""

from models.base import BAND_NAMES, RGB, ChangeModel, ModelInfo
from models.errors import BandsError, ModelError, UnknownModelError, WeightsError
from models.registry import get_model, list_models, load_model, register_model, register_weights_loader

__all__ = [
    "BAND_NAMES",
    "RGB",
    "ChangeModel",
    "ModelInfo",
    "ModelError",
    "UnknownModelError",
    "WeightsError",
    "BandsError",
    "get_model",
    "list_models",
    "load_model",
    "register_model",
    "register_weights_loader",
]
