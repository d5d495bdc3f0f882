"""``soilwatch detect``: disturbance patches from a before/after pair, or bare soil from one image."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from detector.cli.options import load_model_config
from detector.cli.progress import tile_progress
from detector.patches import M2_PER_MU
from detector.pipeline import DetectionResult, DetectOptions, detect_pair

__all__ = ["detect", "print_summary"]

log = logging.getLogger(__name__)


def _bounds(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        left, bottom, right, top = (float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected left,bottom,right,top, got {text!r}", param_hint="--bounds") from None
    return left, bottom, right, top


def detect(
    after: Path = typer.Option(..., "--after", "-a", help="The later image (GeoTIFF or any GDAL raster)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output patches: .gpkg (default layer 'patches'), .geojson or .shp."
    ),
    before: Path | None = typer.Option(
        None, "--before", "-b", help="The earlier image. Without it: current bare soil in --after only."
    ),
    model: str = typer.Option(
        "auto",
        "--model",
        "-m",
        help="auto: the learned model (changenet) for two dates at 5 m per pixel or finer, else the spectral "
        "baseline (one date, coarser imagery, or with --model-config); or a registered name (changenet, baseline), "
        "or a weights file (.pt) from soilwatch train.",
    ),
    model_config: Path | None = typer.Option(
        None, "--model-config", help="YAML file of model settings, e.g. baseline thresholds."
    ),
    threshold: float | None = typer.Option(
        None, min=0.0, max=1.0, help="Probability above which a pixel is disturbed (default: the model's own)."
    ),
    min_area_m2: float = typer.Option(200.0, "--min-area-m2", min=0.0, help="Minimum mapping area in m²."),
    bands: str | None = typer.Option(
        None, help="Band order of --before (and --after unless --after-bands), e.g. 'red,green,blue,nir=3,2,1,4'."
    ),
    after_bands: str | None = typer.Option(None, help="Band order of --after when it differs from --before."),
    common_bands: bool = typer.Option(
        False, "--common-bands", help="Use only the bands both dates have (e.g. RGB before, RGB+NIR after)."
    ),
    before_date: str | None = typer.Option(None, help="Date of --before, YYYY-MM-DD (default: from tags/name)."),
    after_date: str | None = typer.Option(None, help="Date of --after, YYYY-MM-DD (default: from tags/name)."),
    crs: str | None = typer.Option(None, help="CRS of the output, e.g. EPSG:4490 (default: the before image's)."),
    prob_out: Path | None = typer.Option(
        None, "--prob-out", help="Also write the probability raster (percent, uint8) as a Cloud-Optimised GeoTIFF."
    ),
    bounds: str | None = typer.Option(
        None, help="Only this area: left,bottom,right,top in the before image's CRS."
    ),
    max_resolution_m: float = typer.Option(
        16.0, "--max-resolution-m", min=0.0, help="Refuse images with pixels coarser than this, in metres."
    ),
    tile_size: int | None = typer.Option(None, min=64, help="Model window in pixels (default: the model's)."),
    batch_size: int | None = typer.Option(None, min=1, help="Windows per model call (default: the model's)."),
    workers: int | None = typer.Option(None, min=1, help="Worker threads (default: CPU cores, at most 4)."),
    device: str | None = typer.Option(None, help="torch device for learned models: cpu or cuda (default: auto)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    show: int = typer.Option(10, min=0, help="How many of the largest patches to list when done."),
) -> None:
    """Find disturbance patches (扰动图斑) between two dates and write them as polygons.

    The after image is warped onto the before image's grid over their overlap (any CRS: CGCS2000
    geographic, Gauss-Krüger zones, UTM, WGS 84), both are put on one radiometric scale, the model
    runs window by window, and patches of at least --min-area-m2 are written with area (m², 亩),
    centroid (CGCS2000 lon/lat), confidence and dates. Every patch is a lead (疑似) for field checks.

    Example, on the imagery made by `soilwatch demo`:

    \b
      soilwatch detect -b demo-output/demo_2023-06-15.tif -a demo-output/demo_2024-06-15.tif \\
          -o demo-output/my_patches.gpkg --prob-out demo-output/my_prob.tif --overwrite
    """
    options = DetectOptions(
        model=model,
        model_config=load_model_config(model_config),
        threshold=threshold,
        min_area_m2=min_area_m2,
        max_resolution_m=max_resolution_m,
        bands_before=bands,
        bands_after=after_bands or bands,
        common_bands=common_bands,
        before_date=before_date,
        after_date=after_date,
        out_crs=crs,
        prob_out=prob_out,
        overwrite=overwrite,
        bounds=_bounds(bounds),
        tile_size=tile_size,
        batch_size=batch_size,
        workers=workers,
        device=device,
    )
    quiet = logging.getLogger().level > logging.WARNING
    with tile_progress("detecting", enabled=not quiet) as progress:
        result = detect_pair(before, after, out, options=options, progress=progress)
    if not quiet:
        print_summary(result, show=show)


def print_summary(result: DetectionResult, *, show: int = 10, console: Console | None = None) -> None:
    """A few lines on what was found, the largest patches, and where the files are."""
    console = console or Console()
    gdf = result.patches
    mode = "new disturbance" if result.before is not None else "bare soil (single date)"
    total_m2 = float(gdf["area_m2"].sum()) if len(gdf) else 0.0
    console.print(
        f"[bold]{len(gdf)}[/bold] suspected {mode} patches (疑似扰动图斑), {total_m2:,.0f} m² "
        f"({total_m2 / M2_PER_MU:,.1f} 亩) over {result.area_km2:,.2f} km² "
        f"in {result.seconds:.1f} s ({result.pixels / max(result.seconds, 1e-9) / 1e6:.1f} Mpx/s), model {result.model}"
    )
    if len(gdf) and show:
        table = Table("patch_id", "area m²", "亩", "lon", "lat", "confidence", title="largest patches")
        for _, row in gdf.nlargest(show, "area_m2").iterrows():
            table.add_row(
                row.patch_id,
                f"{row.area_m2:,.0f}",
                f"{row.area_mu:.2f}",
                f"{row.lon:.6f}",
                f"{row.lat:.6f}",
                f"{row.confidence:.2f} (max {row.conf_max:.2f})",
            )
        console.print(table)
    if result.out_path is not None:
        console.print(f"patches: {result.out_path}  (CRS {gdf.crs.to_string() if gdf.crs else '?'})")
    if result.prob_path is not None:
        console.print(f"probability raster: {result.prob_path}")
