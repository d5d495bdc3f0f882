"""``soilwatch demo``: make demo imagery and run the main job on it."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.console import Console

from detector.cli.detect import print_summary
from detector.cli.progress import tile_progress
from detector.demo import make_demo_pair, score_patches, truth_polygons
from detector.io import read_small_raster
from detector.pipeline import DetectOptions, detect_pair

__all__ = ["demo"]


def demo(
    out_dir: Path = typer.Option(Path("demo-output"), "--out-dir", help="Folder for the demo imagery and results."),
    size: int = typer.Option(2048, min=256, max=20_000, help="Scene size in pixels (square)."),
    resolution_m: float = typer.Option(1.0, "--resolution-m", min=0.5, max=10.0, help="Ground resolution in metres."),
    seed: int = typer.Option(7, help="Seed of the synthetic scene."),
    model: str = typer.Option(
        "auto", "--model", "-m", help="auto (as soilwatch detect), a registered model name, or a weights file."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace earlier demo results in --out-dir."),
) -> None:
    """Make demo imagery and detect the disturbance patches on it.

    The imagery is a synthetic but realistic before/after pair in CGCS2000 / Gauss-Krüger
    (EPSG:4548), 4 bands, with construction sites, fields, ploughing, roads, haze and seasonal change.

    The imagery is written once and reused; results go to OUT_DIR/patches.gpkg. The demo also
    prints how many planted construction sites were found and how many patches are false alarms.

    Example:

    \b
      soilwatch demo --overwrite
    """
    console = Console()
    quiet = logging.getLogger().level > logging.WARNING
    console.print(f"demo imagery in {out_dir}/ ({size} x {size} px at {resolution_m:g} m) ...")
    with tile_progress("making imagery", enabled=not quiet, unit="blocks") as progress:
        pair = make_demo_pair(
            out_dir, size=size, resolution_m=resolution_m, seed=seed, overwrite=overwrite, progress=progress
        )
    out = out_dir / "patches.gpkg"
    options = DetectOptions(model=model, overwrite=overwrite, prob_out=out_dir / "probability.tif")
    with tile_progress("detecting", enabled=not quiet) as progress:
        result = detect_pair(pair.before, pair.after, out, options=options, progress=progress)
    print_summary(result, console=console)
    change, transform, crs = read_small_raster(pair.truth)
    scores = score_patches(result.patches, truth_polygons(change, transform, crs.to_string()))
    console.print(
        f"against the planted truth: found {scores['found']:.0f} of {scores['true_sites']:.0f} construction "
        f"sites (object recall {scores['object_recall']:.0%}); {scores['false_alarms']:.0f} of "
        f"{scores['patches']:.0f} patches are false alarms (object precision {scores['object_precision']:.0%})"
    )
    console.print(f"open {out} over {pair.after} in QGIS to look at them.")
