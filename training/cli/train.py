"""``soilwatch train``: train a ChangeNet from a YAML config (seeded, checkpointed, resumable), or fine-tune
one on a bureau's own before/after GeoTIFFs and 图斑 polygons (``--before/--after/--labels``), or adapt it to
new imagery without polygons (``--before/--after --self-train``)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
import typer
from rich.console import Console

from training.errors import TrainingError

if TYPE_CHECKING:
    from training.train import TrainConfig

__all__ = ["load_recipe", "train_cmd"]


def train_cmd(
    config: Path | None = typer.Option(
        None, "--config", help="Training config (YAML), e.g. training/configs/changenet.yaml. Not with --before.",
        dir_okay=False,
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Weights file to write (.pt; a .json sidecar with its sha256 goes next to it). "
        "Default: <config name>.pt, or changenet-finetuned.pt for a fine-tune, in the working directory.",
        dir_okay=False,
    ),
    before: Path | None = typer.Option(
        None, "--before", "-b", help="Fine-tune: the before image (GeoTIFF or any GDAL raster); its grid is the "
        "reference.", dir_okay=False,
    ),
    after: Path | None = typer.Option(
        None, "--after", "-a", help="Fine-tune: the after image; warped onto the before grid as 'soilwatch detect' "
        "does.", dir_okay=False,
    ),
    labels: Path | None = typer.Option(
        None, "--labels", help="Fine-tune: the disturbance polygons (图斑) mapped on these images: Shapefile "
        "(GBK or UTF-8), GeoPackage or GeoJSON, any CRS. Everything outside them counts as 'no change'. "
        "With --self-train: only used to score --holdout.",
        dir_okay=False,
    ),
    self_train: bool = typer.Option(
        False, "--self-train", help="Fine-tune without 图斑: learn from the init model's own confident "
        "predictions on these images (p >= 0.7 change, p <= 0.3 no change, the rest ignored), windows from the "
        "whole overlap. Adapts the model to new imagery; it cannot teach it a kind of site it misses.",
    ),
    labels_layer: str | None = typer.Option(None, "--labels-layer", help="Layer of --labels when it has several."),
    init: str = typer.Option(
        "shipped", "--init", help="Fine-tune: start from 'shipped' (models/weights/changenet.pt) or a ChangeNet .pt "
        "file; its bands, normalisation and threshold are kept.",
    ),
    holdout: str | None = typer.Option(
        None, "--holdout", help="Fine-tune: region kept out of training and scored before and after: east:0.3 "
        "(or west/north/south, a fraction of the common area), minx,miny,maxx,maxy[@EPSG:xxxx] "
        "(default: the before image's CRS), or a polygon file.",
    ),
    resume: Path | None = typer.Option(
        None, "--resume", help="Checkpoint to continue from (written every optim.checkpoint_every steps to "
        "<output>.ckpt). Config training only.", dir_okay=False,
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Data folder with the real change sets. Default: env SOILWATCH_SHARED_DATA, else "
        "data.root of the config.", file_okay=False,
    ),
    steps: int | None = typer.Option(
        None, "--steps", help="Training steps: overrides optim.steps of a config; fine-tune default 100."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (windows, augmentation, torch); default: "
                                    "the config's seed, 0 for a fine-tune."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Fine-tune: windows per step (default 8)."),
    crop: int | None = typer.Option(None, "--crop", help="Fine-tune: window side in pixels, a multiple of 16 "
                                    "(default 128)."),
    lr: float | None = typer.Option(None, "--lr", help="Fine-tune: peak learning rate (default 5e-4)."),
    bands: str | None = typer.Option(None, "--bands", help="Fine-tune: band map of the before image, as in "
                                     "'soilwatch detect' (e.g. red,green,blue,nir=3,2,1,4)."),
    after_bands: str | None = typer.Option(None, "--after-bands", help="Fine-tune: band map of the after image."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda. Default: cuda when available."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Train the change network on synthetic scenes and real labelled pairs (--config), then (if the config
    names eval_sets) score it with the same code as 'soilwatch eval' and record the scores next to the
    weights. Or fine-tune it on a bureau's own imagery and hand-mapped 图斑 (--before/--after/--labels),
    scoring the init and the fine-tuned model on a --holdout region. Or adapt it to a new image pair
    without polygons (--before/--after --self-train).

    Example: soilwatch train --config training/configs/changenet_smoke.yaml -o /tmp/smoke.pt --overwrite

    Example: soilwatch train --before 2023.tif --after 2024.tif --labels 2023图斑.shp --init shipped
    --holdout east:0.3 --steps 100 --seed 0 -o mymodel.pt

    Example: soilwatch train --before 2024.tif --after 2025.tif --self-train --init shipped -o adapted.pt
    """
    if device not in (None, "cpu", "cuda"):
        raise click.BadParameter(f"{device!r} is not cpu or cuda", param_hint="--device")
    if steps is not None and steps < 1:
        raise click.BadParameter(f"{steps!r} must be >= 1", param_hint="--steps")
    command = "soilwatch " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else None
    err = Console(stderr=True, soft_wrap=True)

    def say(line: str) -> None:
        err.print(line, highlight=False, markup=False)

    bureau = {"--before": before, "--after": after, "--labels": labels}
    if any(v is not None for v in bureau.values()) or self_train:
        missing = [k for k, v in bureau.items() if v is None and not (k == "--labels" and self_train)]
        if missing:
            need = "--before and --after" if self_train else "--before, --after and --labels (or --self-train)"
            raise click.UsageError(f"a fine-tune needs {need}; {', '.join(missing)} missing")
        used = [k for k, v in {"--config": config, "--resume": resume, "--data": data}.items() if v is not None]
        if used:
            raise click.UsageError(f"{', '.join(used)} belong to config training, not to a fine-tune "
                                   "(--before/--after/--labels); drop them")
        out = _output(output or Path("changenet-selftrained.pt" if self_train else "changenet-finetuned.pt"), overwrite)
        command = _finetune_command(before, after, labels, out, init=init, holdout=holdout, steps=steps,  # type: ignore[arg-type]
                                    seed=seed, batch_size=batch_size, crop=crop, lr=lr, bands=bands,
                                    after_bands=after_bands, labels_layer=labels_layer, self_train=self_train)
        _finetune(before, after, labels, out, init=init, holdout=holdout, steps=steps, seed=seed,  # type: ignore[arg-type]
                  batch_size=batch_size, crop=crop, lr=lr, bands=bands, after_bands=after_bands,
                  labels_layer=labels_layer, device=device, command=command, say=say, self_train=self_train)
        return
    if config is None:
        raise click.UsageError("give --config (train from a YAML config) or --before/--after/--labels (fine-tune)")
    fine_only = {"--holdout": holdout, "--batch-size": batch_size, "--crop": crop, "--lr": lr, "--bands": bands,
                 "--after-bands": after_bands, "--labels-layer": labels_layer}
    used = [k for k, v in fine_only.items() if v is not None] + (["--init"] if init != "shipped" else [])
    if used:
        raise click.UsageError(f"{', '.join(used)} only apply to a fine-tune (--before/--after/--labels)")
    _train_config(config, output, resume=resume, data=data, steps=steps, seed=seed, device=device,
                  overwrite=overwrite, command=command, say=say)


def _output(out: Path, overwrite: bool, *, resuming: bool = False) -> Path:
    if out.suffix != ".pt":
        raise click.BadParameter(f"{str(out)!r} must end in .pt", param_hint="--output")
    if out.exists() and not overwrite and not resuming:
        raise click.BadParameter(f"{str(out)!r} exists; pass --overwrite to replace it", param_hint="--output")
    if not out.parent.is_dir():
        raise click.BadParameter(f"folder {str(out.parent)!r} does not exist; create it first", param_hint="--output")
    return out


def _finetune_command(before: Path, after: Path, labels: Path | None, out: Path, **options: object) -> str:
    """The fine-tune as one command line, from the values actually used (so it is complete however it was called)."""
    from training.bureau import FinetuneConfig

    defaults = FinetuneConfig()
    filled = {**options, "steps": options["steps"] or defaults.steps,
              "seed": defaults.seed if options["seed"] is None else options["seed"]}
    args = ["soilwatch", "train", "--before", str(before), "--after", str(after)]
    if labels is not None:
        args += ["--labels", str(labels)]
    for key, value in filled.items():
        if value is True:
            args.append(f"--{key.replace('_', '-')}")
        elif value is not None and value is not False:
            args += [f"--{key.replace('_', '-')}", str(value)]
    return " ".join(shlex.quote(a) for a in [*args, "-o", str(out)])


def _finetune(
    before: Path, after: Path, labels: Path | None, out: Path, *, init: str, holdout: str | None, steps: int | None,
    seed: int | None, batch_size: int | None, crop: int | None, lr: float | None, bands: str | None,
    after_bands: str | None, labels_layer: str | None, device: str | None, command: str | None, say: object,
    self_train: bool = False,
) -> None:
    from training.bureau import FinetuneConfig, finetune

    given = {"steps": steps, "seed": seed, "batch_size": batch_size, "crop": crop, "lr": lr, "self_train": self_train}
    try:
        cfg = FinetuneConfig(**{k: v for k, v in given.items() if v is not None})
    except TrainingError as exc:
        raise click.BadParameter(str(exc)) from exc
    res = finetune(before, after, labels, out, init=init, holdout=holdout, cfg=cfg, bands_before=bands,
                   bands_after=after_bands, labels_layer=labels_layer, command=command, device=device,
                   progress=say)  # type: ignore[arg-type]
    if res.scores_init is not None and res.scores_finetuned is not None:
        i, f = res.scores_init, res.scores_finetuned

        def num(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.3f}"

        typer.echo(f"held-out pixel F1 {num(i['pixel']['f1'])} -> {num(f['pixel']['f1'])}, "
                   f"object F1 {num(i['object']['f1'])} -> {num(f['object']['f1'])} "
                   f"(init {init} -> {out})")
    else:
        typer.echo(f"wrote {out} (no --holdout: not scored)")


def load_recipe(config: Path, *, steps: int | None, seed: int | None) -> TrainConfig:
    """The config at ``config`` with ``--steps`` and ``--seed`` applied; a bad config is a usage error on --config."""
    import dataclasses

    from training.train import load_config

    try:
        cfg = load_config(config)
    except TrainingError as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from exc
    if steps is not None:
        cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, steps=steps))
    if seed is not None:
        cfg = dataclasses.replace(cfg, seed=seed)
    return cfg


def _train_config(
    config: Path, output: Path | None, *, resume: Path | None, data: Path | None, steps: int | None,
    seed: int | None, device: str | None, overwrite: bool, command: str | None, say: object,
) -> None:
    from training.train import train

    cfg = load_recipe(config, steps=steps, seed=seed)
    out = _output(output or Path(f"{cfg.name}.pt"), overwrite, resuming=resume is not None)
    if resume is not None and not resume.is_file():
        raise click.BadParameter(f"checkpoint {str(resume)!r} does not exist", param_hint="--resume")
    train(cfg, out, root=data, resume=resume, command=command, device=device, progress=say)  # type: ignore[arg-type]
