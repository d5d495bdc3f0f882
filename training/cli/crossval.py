"""``soilwatch crossval``: leave-one-pair-out cross-validation of a training recipe on one real set."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click
import typer
from rich.console import Console
from rich.table import Table

from training.cli.eval import _fmt, _min_area
from training.cli.train import load_recipe

__all__ = ["crossval_cmd"]

_EXAMPLE = ("soilwatch crossval --config training/configs/changenet.yaml --set dsifn_changeformer "
            "-o runs/lopo_dsifn")


def crossval_cmd(
    config: Path = typer.Option(
        ..., "--config", help="The training recipe (YAML), e.g. training/configs/changenet.yaml; --set must be one "
        "of its data.train_sets.", dir_okay=False,
    ),
    set_name: str = typer.Option(..., "--set", help="The real set whose pairs are left out one at a time."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Folder for the fold models (fold_<pair>.pt) and the report crossval.json. "
        "Rerunning into the same folder skips finished folds and resumes an interrupted one.", file_okay=False,
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Data folder with the real change sets. Default: env SOILWATCH_SHARED_DATA, else "
        "data.root of the config.", file_okay=False,
    ),
    steps: int | None = typer.Option(None, "--steps", help="Training steps per fold: overrides optim.steps."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed of every fold; default: the config's."),
    min_area_m2: float = typer.Option(200.0, "--min-area-m2", help="Predicted objects smaller than this are "
                                      "dropped before object scoring, as in 'soilwatch eval'."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda. Default: cuda when available."),
) -> None:
    """Leave-one-pair-out: for each pair of --set, train the recipe without that pair and score the model on it
    alone; print the per-pair and pooled scores and write them to <output>/crossval.json. Every score comes from a
    model that never saw its pair, but did see the set's other pairs: it measures a new image of a known kind of
    imagery, where the leave-one-set-out configs (changenet_loso_*.yaml) measure a new kind.

    Example: soilwatch crossval --config training/configs/changenet.yaml --set dsifn_changeformer -o runs/lopo_dsifn
    """
    from training.crossval import cross_validate

    if device not in (None, "cpu", "cuda"):
        raise click.BadParameter(f"{device!r} is not cpu or cuda", param_hint="--device")
    if steps is not None and steps < 1:
        raise click.BadParameter(f"{steps!r} must be >= 1", param_hint="--steps")
    _min_area(min_area_m2)
    cfg = load_recipe(config, steps=steps, seed=seed)
    if set_name not in cfg.data.train_sets:
        raise click.BadParameter(f"{set_name!r} is not in the recipe's data.train_sets "
                                 f"{list(cfg.data.train_sets)!r}; its scores are held out already "
                                 "('soilwatch eval')", param_hint="--set")
    if output.exists() and not output.is_dir():
        raise click.BadParameter(f"{str(output)!r} is not a folder", param_hint="--output")
    command = "soilwatch " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else None
    err = Console(stderr=True, soft_wrap=True)
    res = cross_validate(cfg, set_name, output, root=data, min_area_m2=min_area_m2, device=device,
                         command=command, progress=lambda line: err.print(line, highlight=False, markup=False))
    t = Table(title=f"{cfg.name}: leave-one-pair-out on {set_name} (threshold {cfg.threshold:g}, "
              f"min area {min_area_m2:g} m²)")
    for col in ("pair", "px P", "px R", "px F1", "px IoU", "obj P", "obj R", "objects pred/true"):
        t.add_column(col, justify="left" if col == "pair" else "right")
    rows = [(p.name, p.pixel, p.objects) for p in res.result.pairs]
    rows.append(("pooled", res.result.pixel, res.result.objects))
    for i, (name, px, ob) in enumerate(rows):
        t.add_row(name, _fmt(px.precision), _fmt(px.recall), _fmt(px.f1), _fmt(px.iou), _fmt(ob.precision),
                  _fmt(ob.recall), f"{ob.predicted}/{ob.true}", end_section=i == len(rows) - 2)
    Console().print(t)
    err.print(f"report written to {output / 'crossval.json'}")
