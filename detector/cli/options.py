"""Option helpers shared by the commands of several packages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

__all__ = ["load_model_config"]


def load_model_config(path: Path | None) -> dict[str, Any] | None:
    """The mapping in a ``--model-config`` YAML file (None when no file is given); usage error otherwise."""
    if path is None:
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"cannot read {str(path)!r}: {exc}", param_hint="--model-config") from exc
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{str(path)!r} must hold a mapping of setting: value", param_hint="--model-config")
    return data
