"""``soilwatch train``: train a ChangeNet from a YAML config (seeded, checkpointed, resumable)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click
import typer
from rich.console import Console

from training.errors import TrainingError

__all__ = ["train_cmd"]


def train_cmd(
    config: Path = typer.Option(
        ..., "--config", help="Training config (YAML), e.g. training/configs/changenet.yaml.", dir_okay=False
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Weights file to write (.pt; a .json sidecar with its sha256 goes next to it). "
        "Default: <config name>.pt in the working directory.", dir_okay=False,
    ),
    resume: Path | None = typer.Option(
        None, "--resume", help="Checkpoint to continue from (written every optim.checkpoint_every steps to "
        "<output>.ckpt).", dir_okay=False,
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Data folder with the real change sets. Default: env SOILWATCH_SHARED_DATA, else "
        "data.root of the config.", file_okay=False,
    ),
    steps: int | None = typer.Option(None, "--steps", help="Override optim.steps (e.g. for a quick smoke run)."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda. Default: cuda when available."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Train the change network on synthetic scenes and real labelled pairs, then (if the config names
    eval_sets) score it with the same code as 'soilwatch eval' and record the scores next to the weights.

    Example: soilwatch train --config training/configs/changenet_smoke.yaml -o /tmp/smoke.pt --overwrite
    """
    import dataclasses

    from training.train import load_config, train

    try:
        cfg = load_config(config)
    except TrainingError as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from exc
    if steps is not None:
        if steps < 1:
            raise click.BadParameter(f"{steps!r} must be >= 1", param_hint="--steps")
        cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, steps=steps))
    if device not in (None, "cpu", "cuda"):
        raise click.BadParameter(f"{device!r} is not cpu or cuda", param_hint="--device")
    out = output or Path(f"{cfg.name}.pt")
    if out.suffix != ".pt":
        raise click.BadParameter(f"{str(out)!r} must end in .pt", param_hint="--output")
    if out.exists() and not overwrite and resume is None:
        raise click.BadParameter(f"{str(out)!r} exists; pass --overwrite to replace it", param_hint="--output")
    if resume is not None and not resume.is_file():
        raise click.BadParameter(f"checkpoint {str(resume)!r} does not exist", param_hint="--resume")
    err = Console(stderr=True)
    command = "soilwatch " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else None
    train(cfg, out, root=data, resume=resume, command=command, device=device,
          progress=lambda line: err.print(line, highlight=False))
