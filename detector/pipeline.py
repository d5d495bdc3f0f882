"""The detector's one entry point: :func:`detect_pair` (two dates) — or one date with ``before=None``.

read (windowed, after warped onto the before grid) → radiometric normalisation → model on tiles
with context margins, batched, in a few worker threads → threshold and clean-up per tile → polygons
joined across seams → holes/slivers/small patches removed → simplified → attributes → written
atomically. Memory is bounded by ``workers × batch_size × tile_size²``, whatever the scene size.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
from rasterio.crs import CRS
from rasterio.windows import Window
from scipy import ndimage

from detector.align import check_resolution, overlap_window
from detector.auto import AUTO, resolve_options
from detector.bands import BandMap, common_bands
from detector.errors import BandMappingError, NoOverlapError
from detector.io import (
    VECTOR_DRIVERS,
    PairSource,
    ProbabilityWriter,
    RasterInfo,
    ReadLimits,
    check_output_path,
    inspect_raster,
    write_patches,
)
from detector.patches import PatchSource, build_patches, in_chunks
from detector.radiometry import Normaliser, fit_normaliser
from detector.tiling import Tile, count_tiles, make_tiles
from detector.vectorize import Fragment, clean_mask, merge_fragments, tidy_many, to_crs_coords, vectorize_tile
from models import ChangeModel, load_model

__all__ = [
    "DetectOptions",
    "DetectionPlan",
    "DetectionResult",
    "detect_pair",
    "detect_unit",
    "finish_patches",
    "plan_detection",
    "prepare_model",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class DetectOptions:
    """Everything that steers one detection; defaults are the documented CLI defaults.

    ``bounds``: limit the work to ``(left, bottom, right, top)`` in the before image's CRS.
    ``min_area_m2``: minimum mapping area. ``max_resolution_m``: refuse coarser imagery.
    ``threshold``/``tile_size``/``batch_size``: override the model's own defaults.
    """

    model: str = "auto"  # detector.auto: the learned model for two dates of fine imagery, else the baseline
    model_config: dict[str, Any] | None = None
    threshold: float | None = None
    min_area_m2: float = 200.0
    max_resolution_m: float = 16.0
    bands_before: str | None = None
    bands_after: str | None = None
    common_bands: bool = False
    before_date: str | None = None
    after_date: str | None = None
    out_crs: str | None = None
    prob_out: Path | None = None
    overwrite: bool = False
    bounds: tuple[float, float, float, float] | None = None
    tile_size: int | None = None
    batch_size: int | None = None
    workers: int | None = None
    border_px: int = 2
    open_px: int = 1
    close_px: int = 1
    match_histograms: bool = True
    device: str | None = None
    limits: ReadLimits = field(default_factory=ReadLimits)

    def __post_init__(self) -> None:
        if self.min_area_m2 < 0:
            raise ValueError(f"min_area_m2 must be >= 0, got {self.min_area_m2!r}")
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold!r}")
        if self.max_resolution_m <= 0:
            raise ValueError(f"max_resolution_m must be positive, got {self.max_resolution_m!r}")


@dataclass
class DetectionResult:
    """What a detection produced; ``patches`` is in ``crs`` (the output CRS)."""

    patches: gpd.GeoDataFrame
    crs: CRS
    model: str
    out_path: Path | None
    prob_path: Path | None
    before: RasterInfo | None
    after: RasterInfo
    area_window: Window
    tiles: int
    pixels: int
    area_km2: float
    seconds: float


def prepare_model(options: DetectOptions) -> ChangeModel:
    """Load ``options.model``; ``auto`` must have been resolved for the images first (:func:`resolve_options`)."""
    if options.model == AUTO:
        raise ValueError("model 'auto' depends on the images: resolve it with detector.auto.resolve_options first")
    kwargs: dict[str, Any] = {}
    if options.model_config:
        kwargs["config"] = options.model_config
    if options.device:
        kwargs["device"] = options.device
    return load_model(options.model, **kwargs)


def _bands_for_model(bm: BandMap, model: ChangeModel) -> BandMap:
    wanted = set(model.info.required_bands) | set(model.info.optional_bands)
    missing = [b for b in model.info.required_bands if b not in bm.names]
    if missing:
        raise BandMappingError(f"model {model.info.label!r} needs bands {missing!r} that the image lacks")
    return bm.select([n for n in bm.names if n in wanted])


@dataclass(frozen=True)
class DetectionPlan:
    """Everything needed to detect on any part of a scene, decided once for the whole scene.

    Made by :func:`plan_detection`; picklable, so work units can run in other processes or on
    other machines (:func:`detect_unit`) and be joined by :func:`finish_patches`. The radiometric
    scale is fitted on the whole overlap, so every unit sees the same one.
    """

    options: DetectOptions
    before: RasterInfo | None
    after: RasterInfo
    area: Window
    normaliser: Normaliser
    model_label: str
    threshold: float
    margin_px: int
    tile_size: int
    batch_size: int

    @property
    def grid(self) -> Any:
        return (self.before or self.after).grid

    @property
    def resolution_m(self) -> float:
        return (self.before or self.after).resolution_m

    def units(self, unit_px: int = 2048) -> list[Window]:
        """Work units: a fixed grid of ``unit_px`` blocks anchored at the image origin, cut to the area.

        Anchoring at the origin (not at the area) means a re-run over the same image gives the same
        units, whatever the area.
        """
        if unit_px < 1:
            raise ValueError(f"unit_px must be positive, got {unit_px!r}")
        a = self.area
        c0, r0 = int(a.col_off), int(a.row_off)
        c1, r1 = c0 + int(a.width), r0 + int(a.height)
        out = []
        for row in range(r0 // unit_px * unit_px, r1, unit_px):
            for col in range(c0 // unit_px * unit_px, c1, unit_px):
                top, left = max(row, r0), max(col, c0)
                bottom, right = min(row + unit_px, r1), min(col + unit_px, c1)
                out.append(Window(left, top, right - left, bottom - top))
        return out


def plan_detection(
    before: str | Path | None, after: str | Path, *, options: DetectOptions, model: ChangeModel
) -> DetectionPlan:
    """Check both images, decide bands, overlap, window sizes, and fit the radiometric scale."""
    opts = options
    if before is None and not model.info.single_date:
        raise BandMappingError(f"model {model.info.label!r} needs two dates; give --before")
    b_info = (
        None
        if before is None
        else inspect_raster(before, bands=opts.bands_before, limits=opts.limits, name=str(before))
    )
    a_info = inspect_raster(after, bands=opts.bands_after, limits=opts.limits, name=str(after))
    a_bands = a_info.bands
    if b_info is not None:  # the dates must carry the same bands, whichever of them the model reads
        b_bands, a_bands = common_bands(b_info.bands, a_bands, allow_subset=opts.common_bands)
        b_info = replace(b_info, bands=_bands_for_model(b_bands, model))
        check_resolution(b_info.grid, max_resolution_m=opts.max_resolution_m)
    a_info = replace(a_info, bands=_bands_for_model(a_bands, model))
    check_resolution(a_info.grid, max_resolution_m=opts.max_resolution_m)
    area = overlap_window((b_info or a_info).grid, a_info.grid, bounds=opts.bounds)
    margin = model.info.margin_px
    with PairSource(b_info, a_info) as src:
        norm = _fit(src, area, b_info is not None, opts.match_histograms, _workers(opts))
    return DetectionPlan(
        options=opts,
        before=b_info,
        after=a_info,
        area=area,
        normaliser=norm,
        model_label=model.info.label,
        threshold=opts.threshold if opts.threshold is not None else model.info.threshold,
        margin_px=margin,
        tile_size=_tile_size(opts.tile_size or model.info.tile_size, area, margin),
        batch_size=max(1, opts.batch_size or model.info.batch_size),
    )


TileCallback = Callable[[Tile, np.ndarray, np.ndarray], None]


def detect_unit(
    plan: DetectionPlan,
    unit: Window,
    *,
    model: ChangeModel | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    on_tile: TileCallback | None = None,
) -> list[Fragment]:
    """Run the model over one work unit (a window inside ``plan.area``); returns its polygon fragments.

    Fragments that reach an edge shared with another unit are marked, so that
    :func:`finish_patches` joins them exactly. ``on_tile(tile, prob, valid)`` sees each tile core.
    """
    model = model or prepare_model(plan.options)
    _tune_malloc()
    if model.info.label != plan.model_label:
        raise ValueError(f"plan was made for model {plan.model_label!r}, not {model.info.label!r}")
    tiles = make_tiles(unit, tile_size=plan.tile_size, margin=plan.margin_px, clip=plan.area)
    n_tiles = count_tiles(unit, tile_size=plan.tile_size, margin=plan.margin_px)
    fragments: list[Fragment] = []
    with PairSource(plan.before, plan.after) as src:

        def work(batch: list[Tile]) -> list[tuple[Tile, np.ndarray, np.ndarray, list[Fragment]]]:
            return _run_batch(src, batch, plan, model)

        done = 0
        for results in _ordered_map(work, _batches(tiles, plan.batch_size), workers):
            for tile, prob_core, valid_core, frags in results:
                fragments.extend(frags)
                if on_tile is not None:
                    on_tile(tile, prob_core, valid_core)
                done += 1
            _release_memory()
            if progress is not None:
                progress(done, n_tiles)
    return fragments


def detect_pair(
    before: str | Path | None,
    after: str | Path,
    out: str | Path | None = None,
    *,
    options: DetectOptions | None = None,
    model: ChangeModel | None = None,
    progress: Progress | None = None,
) -> DetectionResult:
    """Detect disturbance patches between ``before`` and ``after`` (or bare soil in ``after`` alone).

    Writes ``out`` (GeoPackage/GeoJSON/Shapefile by extension) when given, and the probability
    COG when ``options.prob_out`` is set; both only once everything succeeded.
    """
    opts = options or DetectOptions()
    t0 = time.perf_counter()
    if out is not None:
        check_output_path(out, overwrite=opts.overwrite, kinds=VECTOR_DRIVERS)
    if opts.prob_out is not None:
        check_output_path(opts.prob_out, overwrite=opts.overwrite, kinds={".tif": "", ".tiff": ""})
    if model is None:
        opts = resolve_options(opts, before)
        model = prepare_model(opts)
    plan = plan_detection(before, after, options=opts, model=model)
    workers = _tile_workers(opts, model)
    prob_writer = (
        ProbabilityWriter(opts.prob_out, plan.grid, plan.area, overwrite=opts.overwrite)
        if opts.prob_out is not None
        else None
    )
    try:
        on_tile = None if prob_writer is None else (lambda t, p, v: prob_writer.write(t.core, p, v))
        fragments = detect_unit(plan, plan.area, model=model, workers=workers, progress=progress, on_tile=on_tile)
        patches = finish_patches(plan, fragments)
        if out is not None:
            write_patches(patches, out, overwrite=opts.overwrite)
        prob_path = prob_writer.commit() if prob_writer is not None else None
    except BaseException:
        if prob_writer is not None:
            prob_writer.abort()
        raise
    pixels = int(plan.area.width * plan.area.height)
    return DetectionResult(
        patches=patches,
        crs=patches.crs,
        model=model.info.label,
        out_path=None if out is None else Path(out),
        prob_path=prob_path,
        before=plan.before,
        after=plan.after,
        area_window=plan.area,
        tiles=count_tiles(plan.area, tile_size=plan.tile_size, margin=plan.margin_px),
        pixels=pixels,
        area_km2=pixels * plan.resolution_m**2 / 1e6,
        seconds=time.perf_counter() - t0,
    )


def _tile_size(requested: int, area: Window, margin: int) -> int:
    """Never larger than needed for a small area (rounded up to 32 px, which suits strided networks)."""
    need = max(int(area.width), int(area.height)) + 2 * margin
    size = min(requested, ((need + 31) // 32) * 32)
    return max(size, 2 * margin + 32)


def _workers(opts: DetectOptions) -> int:
    return max(1, opts.workers or min(os.cpu_count() or 1, 4))


def _tile_workers(opts: DetectOptions, model: ChangeModel) -> int:
    """Tile threads: ``--workers``, else one per core (up to 4), except for a model that spreads every call over
    several cores itself (a torch network on the CPU): then one, as more tile threads only contend for the same
    cores (measured with changenet on the 100 Mpx pair: 55.9 s with one worker, 67.5 s with two)."""
    if opts.workers is None and getattr(model, "threads_per_call", 1) > 1:
        return 1
    return _workers(opts)


def _fit(src: PairSource, area: Window, two_dates: bool, match: bool, workers: int = 1) -> Normaliser:
    before, after, valid = src.sample(area, workers=workers)
    if int(valid.sum()) < 100:
        raise NoOverlapError(
            "the images overlap only where one of them has no data (nodata, mask or alpha); "
            "check the nodata value and the footprints"
        )
    return fit_normaliser(before if two_dates else None, after, valid, match_histograms=match, workers=workers)


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


_MALLOC_TRIM = _load_malloc_trim()
_MALLOC_TUNED = False


def _tune_malloc() -> None:
    """Serve the tiles' large arrays from the heap, not from fresh ``mmap`` s.

    glibc maps every array above its (adaptive) threshold afresh and unmaps it when freed, so each
    new temporary costs a page fault per 4 kB: a third of the CPU time went into the kernel. With a
    fixed 64 MB threshold the freed memory is reused; :func:`_release_memory` still hands it back
    when the resident size grows, so it stays bounded.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or _MALLOC_TRIM is None:
        return
    _MALLOC_TUNED = True
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 64 << 20)
    mallopt(m_trim_threshold, 128 << 20)


#: Resident size above which freed heap memory is handed back after a batch (see _release_memory).
TRIM_ABOVE_BYTES = 768 << 20


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _release_memory() -> None:
    """Give freed heap memory back to the system after a batch once the resident size is large.

    Tiles free tens of MB of arrays and GDAL blocks; glibc keeps the freed pages in its arenas,
    so without this the resident size creeps up with scene size (measured: 0.6 → 1.5 GB from a
    25 to a 100 Mpx scene) although nothing is held. Trimming after every batch made the next
    batch fault all its pages in again (≈ 15 % of the model's time), so it happens only above
    :data:`TRIM_ABOVE_BYTES`.
    """
    if _MALLOC_TRIM is not None:
        rss = _rss_bytes()
        if rss is None or rss > TRIM_ABOVE_BYTES:
            _MALLOC_TRIM(0)


def _batches(tiles: Iterator[Tile], size: int) -> Iterator[list[Tile]]:
    chunk: list[Tile] = []
    for t in tiles:
        chunk.append(t)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _ordered_map(fn: Callable[[Any], Any], items: Iterator[Any], workers: int) -> Iterator[Any]:
    """``map`` over a thread pool, results in order, at most ``2 × workers`` items in flight."""
    if workers == 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="soilwatch-tile") as pool:
        pending: deque[Future[Any]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _pad(arr: np.ndarray, pad: tuple[int, int, int, int]) -> np.ndarray:
    top, bottom, left, right = pad
    if not any(pad):
        return arr
    widths = [(0, 0)] * (arr.ndim - 2) + [(top, bottom), (left, right)]
    return np.pad(arr, widths, mode="symmetric")


def _pad_in_place(arr: np.ndarray, pad: tuple[int, int, int, int]) -> None:
    """Fill the ``pad`` borders of ``arr`` ``(…, H, W)`` by mirroring its inside, as ``np.pad(mode="symmetric")``."""
    top, bottom, left, right = pad
    if not any(pad):
        return
    h, w = arr.shape[-2] - top - bottom, arr.shape[-1] - left - right
    if max(top, bottom) > h or max(left, right) > w:  # pads wider than the data reflect repeatedly
        arr[...] = _pad(np.ascontiguousarray(arr[..., top : top + h, left : left + w]), pad)
        return
    if top:
        arr[..., :top, left : left + w] = arr[..., top : 2 * top, left : left + w][..., ::-1, :]
    if bottom:
        arr[..., top + h :, left : left + w] = arr[..., top + h - bottom : top + h, left : left + w][..., ::-1, :]
    if left:
        arr[..., :left] = arr[..., left : 2 * left][..., ::-1]
    if right:
        arr[..., left + w :] = arr[..., left + w - right : left + w][..., ::-1]


def _valid_in_tile(ok: np.ndarray, tile: Tile, tile_size: int, border_px: int) -> np.ndarray:
    """Valid pixels of the padded tile, less ``border_px`` along image, area and nodata edges.

    Those edges carry resampling artefacts; padding is never valid.
    """
    top, bottom, left, right = tile.pad
    h, w = ok.shape
    valid = np.zeros((tile_size, tile_size), dtype=bool)
    if ok.all():  # the common case: only the padded sides need trimming, no morphology
        b = border_px
        valid[
            top + (b if top else 0) : top + h - (b if bottom else 0),
            left + (b if left else 0) : left + w - (b if right else 0),
        ] = True
        return valid
    valid[top : top + h, left : left + w] = ok
    if border_px:
        valid = ndimage.binary_erosion(valid, iterations=border_px, border_value=0)
    return valid


def _run_batch(
    src: PairSource, tiles: list[Tile], plan: DetectionPlan, model: ChangeModel
) -> list[tuple[Tile, np.ndarray, np.ndarray, list[Fragment]]]:
    opts, area, norm, tile_size = plan.options, plan.area, plan.normaliser, plan.tile_size
    names, threshold = plan.after.bands.names, plan.threshold
    min_px = opts.min_area_m2 / plan.resolution_m**2
    dates = 2 if src.before_info is not None else 1
    # every element is written below: the read window is normalised straight into its place, the rest mirrored
    x = np.empty((len(tiles), dates, len(names), tile_size, tile_size), dtype=np.float32)
    valid = np.zeros((len(tiles), tile_size, tile_size), dtype=bool)
    for i, tile in enumerate(tiles):
        before, after, ok = src.read(tile.read)
        top, _, left, _ = tile.pad
        h, w = ok.shape
        inside = (slice(None), slice(top, top + h), slice(left, left + w))
        a01 = norm.match_and_scale(after, out=x[i, -1][inside])
        if before is not None:
            b01 = norm.scale(before, out=x[i, 0][inside])
            if not ok.all():
                # where either date has no data, show the model the same pixels twice: no change evidence
                np.copyto(a01, b01, where=~ok[None])
        _pad_in_place(x[i], tile.pad)
        valid[i] = _valid_in_tile(ok, tile, tile_size, opts.border_px)
    prob = model.predict(x, names)
    out = []
    for i, tile in enumerate(tiles):
        rows, cols = tile.core_in_read
        mask = clean_mask(prob[i] >= threshold, valid[i], open_px=opts.open_px, close_px=opts.close_px)
        seams = (
            tile.core.row_off > area.row_off,
            tile.core.row_off + tile.core.height < area.row_off + area.height,
            tile.core.col_off > area.col_off,
            tile.core.col_off + tile.core.width < area.col_off + area.width,
        )
        frags = vectorize_tile(
            prob[i, rows, cols],
            mask[rows, cols],
            col_off=int(tile.core.col_off),
            row_off=int(tile.core.row_off),
            seam_edges=seams,
            min_px=0.5 * min_px,
        )
        # a fragment inside one tile that is far below the minimum area can never become a patch:
        # dropping it here keeps memory proportional to real candidates, not to noise specks
        frags = [f for f in frags if f.on_seam or f.n_px >= 0.5 * min_px]
        out.append((tile, prob[i, rows, cols], valid[i, rows, cols], frags))
    return out


def finish_patches(plan: DetectionPlan, fragments: list[Fragment]) -> gpd.GeoDataFrame:
    """Join fragments across seams, tidy them and build the patch table (see :mod:`detector.patches`)."""
    opts, grid, res_m = plan.options, plan.grid, plan.resolution_m
    a_info, b_info = plan.after, plan.before
    px_area_m2 = res_m * res_m
    min_px = opts.min_area_m2 / px_area_m2
    # cheap pre-filter; the exact test is on the ellipsoid below
    candidates = [f for f in merge_fragments(fragments) if f.n_px >= 0.5 * min_px]
    workers = _workers(opts)
    tidied = in_chunks(
        lambda g: tidy_many(g, min_hole_px=max(min_px, 1.0)), [f.geometry for f in candidates], workers
    )
    kept: list[Fragment] = []
    for frag, geom in zip(candidates, tidied, strict=True):
        if geom is not None:
            frag.geometry = geom
            kept.append(frag)
    geoms = to_crs_coords([f.geometry for f in kept], grid.transform)
    source = PatchSource(
        before_date=opts.before_date or (b_info.date if b_info else None),
        after_date=opts.after_date or a_info.date,
        source_before=Path(b_info.path).name if b_info else None,
        source_after=Path(a_info.path).name,
        model=plan.model_label,
        change_type="new" if b_info is not None else "bare",
    )
    return build_patches(
        geoms,
        [f.n_px for f in kept],
        [f.prob_sum for f in kept],
        [f.prob_max for f in kept],
        crs=grid.crs,
        source=source,
        min_area_m2=opts.min_area_m2,
        out_crs=CRS.from_user_input(opts.out_crs) if opts.out_crs else None,
        workers=workers,
    )
