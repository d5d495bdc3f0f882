"""Registry of change models: ``get_model(name, **kw)`` and ``list_models()`` (torchvision style).

Builders are keyword-only callables returning a :class:`models.base.ChangeModel`. Learned models
register themselves here with their shipped weights; a path to a weights file is opened with
:func:`load_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.base import ChangeModel
from models.errors import UnknownModelError, WeightsError

__all__ = ["register_model", "get_model", "list_models", "load_model", "register_weights_loader"]

_BUILDERS: dict[str, Callable[..., ChangeModel]] = {}
_WEIGHTS_LOADERS: dict[str, Callable[..., ChangeModel]] = {}


def register_model(name: str) -> Callable[[Callable[..., ChangeModel]], Callable[..., ChangeModel]]:
    """Decorator: register a keyword-only builder under ``name``."""

    def deco(fn: Callable[..., ChangeModel]) -> Callable[..., ChangeModel]:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is already registered")
        _BUILDERS[name] = fn
        return fn

    return deco


def register_weights_loader(suffix: str) -> Callable[[Callable[..., ChangeModel]], Callable[..., ChangeModel]]:
    """Decorator: register a loader for weights files ending in ``suffix`` (e.g. ``".pt"``)."""

    def deco(fn: Callable[..., ChangeModel]) -> Callable[..., ChangeModel]:
        _WEIGHTS_LOADERS[suffix] = fn
        return fn

    return deco


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    _load_builtin()
    return sorted(_BUILDERS)


def get_model(name: str, **kwargs: Any) -> ChangeModel:
    """Build the model registered under ``name``; keyword arguments go to its builder."""
    _load_builtin()
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; choose one of {list_models()!r} or give a weights file path"
        ) from None
    return builder(**kwargs)


def load_model(spec: str | Path, **kwargs: Any) -> ChangeModel:
    """A registered model name, or a path to a weights file."""
    _load_builtin()
    if isinstance(spec, str) and spec in _BUILDERS:
        return get_model(spec, **kwargs)
    path = Path(spec)
    if not path.exists():
        raise UnknownModelError(
            f"{str(spec)!r} is neither a registered model ({', '.join(list_models())}) nor an existing file"
        )
    loader = _WEIGHTS_LOADERS.get(path.suffix.lower())
    if loader is None:
        raise WeightsError(
            f"cannot load weights file {str(path)!r}: no loader for {path.suffix!r} files "
            f"(known: {sorted(_WEIGHTS_LOADERS)!r})"
        )
    return loader(path, **kwargs)


_LOADED = False


def _load_builtin() -> None:
    """Import the modules that register built-in models (late, to keep imports cheap)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from models import builtin  # noqa: F401  (registers on import)
