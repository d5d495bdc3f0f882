"""``soilwatch eval``: score a change model on labelled before/after pairs, per set and overall."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import typer
from rich.console import Console
from rich.table import Table

from detector.cli.options import load_model_config
from training.data import index_data
from training.errors import DatasetNotFoundError, EvaluationError, TrainingError
from training.evaluate import (
    DETECT_BORDER_PX,
    DETECT_CLOSE_PX,
    DETECT_OPEN_PX,
    EvalReport,
    PairResult,
    check_withhold,
    evaluate,
)

__all__ = ["eval_cmd"]

_EXAMPLE = "soilwatch eval --data ../shared/data --model baseline --sets dsifn_changeformer,oscd_s2 --json eval.json"


def _fmt(v: float) -> str:
    return "–" if math.isnan(v) else f"{v:.3f}"


def _table(report: EvalReport) -> Table:
    t = Table(title=f"{report.model['label']} on {report.data} (threshold {report.rule['threshold']:g}, "
              f"min area {report.rule['min_area_m2']:g} m²{', as detected' if report.rule['as_detected'] else ''})")
    for col in ("set", "pairs", "px P", "px R", "px F1", "px IoU", "obj P", "obj R", "objects pred/true"):
        t.add_column(col, justify="left" if col == "set" else "right")
    rows = [(k, len(s.pairs), s.pixel, s.objects) for k, s in report.sets.items()]
    rows.append(("overall", sum(len(s.pairs) for s in report.sets.values()), report.overall_pixel,
                 report.overall_objects))
    for i, (name, n, px, ob) in enumerate(rows):
        t.add_row(name, str(n), _fmt(px.precision), _fmt(px.recall), _fmt(px.f1), _fmt(px.iou),
                  _fmt(ob.precision), _fmt(ob.recall), f"{ob.predicted}/{ob.true}",
                  end_section=i == len(rows) - 2)
    return t


# Usage errors are raised as click's BadParameter with the option named: the command group maps those to
# exit code 2 (typer 0.29 runs on a vendored click whose exceptions the group does not know).
def _threshold(value: float | None) -> float | None:
    if value is not None and not 0.0 < value < 1.0:
        raise click.BadParameter(f"{value!r} is not between 0 and 1 (exclusive)", param_hint="--threshold")
    return value


def _min_area(value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise click.BadParameter(f"{value!r} must be a number of square metres >= 0", param_hint="--min-area-m2")
    return value


def eval_cmd(
    data: Path = typer.Option(
        ..., "--data", help="Folder of change sets laid out as <set>/A|B|label/<name>.png|tif (e.g. shared/data).",
        file_okay=False,
    ),
    model: str = typer.Option(
        "baseline", "--model", help="Registered model name (e.g. baseline) or a path to a weights file."
    ),
    model_config: Path | None = typer.Option(
        None, "--model-config", help="YAML file of model settings, passed to the model builder "
        "(for baseline: SpectralConfig fields).", dir_okay=False,
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write the full report (per set, per pair, overall, rule) to this JSON file.",
        dir_okay=False,
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
    sets: str | None = typer.Option(
        None, "--sets", help="Comma-separated set folder names to evaluate. Default: every change set under --data."
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", callback=_threshold,
        help="Probability (0-1, exclusive) at or above which a pixel counts as change. Default: the model's own "
        "(baseline: 0.5).",
    ),
    min_area_m2: float = typer.Option(
        200.0, "--min-area-m2", callback=_min_area,
        help="Minimum patch area in m²: smaller predicted objects are dropped before object scoring "
        "(converted to pixels with each set's resolution).",
    ),
    withhold_bands: str | None = typer.Option(
        None, "--withhold-bands", help="Comma-separated optional bands to keep from the model although the data "
        "has them (e.g. nir), to measure what they add. Default: the model gets every band it can use.",
    ),
    as_detected: bool = typer.Option(
        False, "--as-detected", help="Score the map soilwatch detect would turn into patches: after its clean-up "
        f"(opening by {DETECT_OPEN_PX} px and closing by {DETECT_CLOSE_PX} px, the image's outer {DETECT_BORDER_PX} px "
        "left out), with holes and patches under --min-area-m2 filled/dropped, for the pixel scores too. Default: "
        "the bare thresholded map.",
    ),
) -> None:
    """Score a change model on labelled before/after pairs: pixel precision/recall/F1/IoU and object
    precision/recall of the change class, per set and pooled over all sets.

    Predicted objects hit a true object at IoU >= 0.25 or >= 50 % cover of it; only valid pixels count.

    Example: soilwatch eval --data ../shared/data --model baseline --sets dsifn_changeformer,oscd_s2 --json eval.json
    """
    from models import load_model
    from models.errors import ModelError

    if not data.is_dir():
        raise click.BadParameter(f"folder {str(data)!r} does not exist", param_hint="--data")
    if json_out is not None and json_out.exists() and not overwrite:
        raise click.BadParameter(f"{str(json_out)!r} exists; pass --overwrite to replace it", param_hint="--json")
    wanted = [s.strip().strip("/") for s in sets.split(",") if s.strip()] if sets else None
    try:
        index = index_data(data, wanted)
    except DatasetNotFoundError as exc:
        raise click.BadParameter(str(exc), param_hint="--sets" if wanted else "--data") from exc
    kwargs = {"config": load_model_config(model_config)} if model_config is not None else {}
    try:
        change_model = load_model(model, **kwargs)
    except (ModelError, ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--model-config" if kwargs else "--model") from exc

    withhold = tuple(b.strip().lower() for b in withhold_bands.split(",") if b.strip()) if withhold_bands else ()
    try:
        check_withhold(change_model, withhold)
    except EvaluationError as exc:
        raise click.BadParameter(str(exc), param_hint="--withhold-bands") from exc
    err = Console(stderr=True)
    for name, why in index.skipped.items():
        err.print(f"[dim]skipped {name}/: {why}[/dim]")
    done = [0]

    def progress(pr: PairResult) -> None:
        done[0] += 1
        err.print(f"[dim]{done[0]}/{index.n_pairs} {pr.set_name}/{pr.name}[/dim]", highlight=False)

    report = evaluate(change_model, index, spec=model, threshold=threshold, min_area_m2=min_area_m2,
                      on_pair=progress, withhold=withhold, as_detected=as_detected)
    Console().print(_table(report))
    if json_out is not None:
        try:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as exc:
            raise TrainingError(f"cannot write report {str(json_out)!r}: {exc}; choose another --json path") from exc
        err.print(f"report written to {json_out}")
