"""End-to-end detection on small GeoTIFFs: seams, areas, CRS/resolution, masks, ids, outputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.features import rasterize
from shapely.geometry import box

from detector.pipeline import DetectOptions, detect_pair
from tests.fixtures import GK_CRS, GK_ORIGIN, MarkerModel, field_scene, marker_pair, write_tif

ORACLE = DetectOptions(match_histograms=False, border_px=0, open_px=0, close_px=0, min_area_m2=10)


def _square_mask(h: int, w: int, r0: int, c0: int, size: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[r0 : r0 + size, c0 : c0 + size] = True
    return m


def test_site_across_window_seams_is_one_polygon_of_the_right_area(tmp_path: Path) -> None:
    # 64-px windows with 4-px margins: cores of 56 px; a 130 x 130 m site spans 3 x 3 windows
    before, after = marker_pair(300, 300, _square_mask(300, 300, 40, 50, 130))
    b, a = write_tif(tmp_path / "b.tif", before), write_tif(tmp_path / "a.tif", after)
    model = MarkerModel(tile_size=64, margin_px=4)
    result = detect_pair(b, a, tmp_path / "p.gpkg", options=ORACLE, model=model)
    assert len(result.patches) == 1
    assert result.tiles > 9 and model.calls > 1
    patch = result.patches.iloc[0]
    assert patch.area_m2 == pytest.approx(130 * 130, rel=0.005)
    expected = box(GK_ORIGIN[0] + 50, GK_ORIGIN[1] - 170, GK_ORIGIN[0] + 180, GK_ORIGIN[1] - 40)
    assert patch.geometry.normalize().equals_exact(expected.normalize(), tolerance=1e-6)
    assert patch.area_mu == pytest.approx(130 * 130 / 666.667, rel=0.001)


def test_l_shaped_and_separate_sites_across_seams(tmp_path: Path) -> None:
    mask = _square_mask(200, 200, 10, 10, 100)
    mask[10:60, 10:110] = True
    mask[60:110, 60:110] = False  # an L over four windows
    mask[150:190, 150:190] = True  # a separate square
    mask[110, 110] = True  # a diagonal-only touch stays apart (and is tiny, so dropped)
    before, after = marker_pair(200, 200, mask)
    b, a = write_tif(tmp_path / "b.tif", before), write_tif(tmp_path / "a.tif", after)
    result = detect_pair(b, a, None, options=ORACLE, model=MarkerModel(tile_size=48, margin_px=4))
    areas = sorted(result.patches.area_m2.round())
    assert areas == pytest.approx([1600, 100 * 100 - 50 * 50], rel=0.005)


def _geographic_grid(lon0: float, lat0: float, px_deg: float) -> Affine:
    return Affine(px_deg, 0, lon0, 0, -px_deg, lat0)


@pytest.mark.parametrize("crs", [GK_CRS, "EPSG:4490"])
def test_area_of_a_known_square_is_right_to_one_percent(tmp_path: Path, crs: str) -> None:
    # a 400 m x 400 m square laid out in the Gauss-Kruger zone, rasterised on a grid in `crs`
    square = box(GK_ORIGIN[0] + 100, GK_ORIGIN[1] - 500, GK_ORIGIN[0] + 500, GK_ORIGIN[1] - 100)
    if crs == GK_CRS:
        transform, size = Affine(1.0, 0, GK_ORIGIN[0], 0, -1.0, GK_ORIGIN[1]), 600
        shape_in_crs = square
    else:
        tr = Transformer.from_crs(GK_CRS, crs, always_xy=True)
        shape_in_crs = shapely.transform(
            square.segmentize(10), lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))
        )
        minx, miny, maxx, maxy = shape_in_crs.bounds
        px = 1.0e-5  # ~0.85 m x 1.1 m at 39.7 N
        transform = _geographic_grid(minx - 50 * px, maxy + 50 * px, px)
        size = int(math.ceil(max(maxx - minx, maxy - miny) / px)) + 100
    painted = rasterize([shape_in_crs], out_shape=(size, size), transform=transform).astype(bool)
    before, after = marker_pair(size, size, painted)
    b = write_tif(tmp_path / "b.tif", before, crs=crs, transform=transform)
    a = write_tif(tmp_path / "a.tif", after, crs=crs, transform=transform)
    result = detect_pair(b, a, None, options=ORACLE, model=MarkerModel(tile_size=256, margin_px=8))
    assert len(result.patches) == 1
    assert result.patches.iloc[0].area_m2 == pytest.approx(160_000, rel=0.01)
    lon, lat = Transformer.from_crs(GK_CRS, "EPSG:4490", always_xy=True).transform(*square.centroid.coords[0])
    assert result.patches.iloc[0].lon == pytest.approx(lon, abs=2e-5)
    assert result.patches.iloc[0].lat == pytest.approx(lat, abs=2e-5)


def test_after_in_another_crs_and_resolution_lines_up(tmp_path: Path) -> None:
    # before: GK zone at 1 m; after: UTM 50N at 0.5 m covering a shifted extent
    mask = _square_mask(300, 300, 100, 120, 60)
    before, after_gk = marker_pair(300, 300, mask)
    b = write_tif(tmp_path / "b.tif", before)
    a_gk = write_tif(tmp_path / "a_gk.tif", after_gk)
    a_utm = tmp_path / "a_utm.tif"
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    with rasterio.open(a_gk) as src:
        dst_t, w, h = calculate_default_transform(src.crs, "EPSG:32650", src.width, src.height, *src.bounds,
                                                  resolution=0.5)
        out = np.zeros((3, h, w), np.uint8)
        for i in range(3):
            reproject(after_gk[i], out[i], src_transform=src.transform, src_crs=src.crs, dst_transform=dst_t,
                      dst_crs="EPSG:32650", resampling=Resampling.nearest, dst_nodata=0)
    write_tif(a_utm, out, crs="EPSG:32650", transform=dst_t)
    same = detect_pair(b, a_gk, None, options=ORACLE, model=MarkerModel(tile_size=128, margin_px=4))
    warped = detect_pair(b, a_utm, None, options=ORACLE, model=MarkerModel(tile_size=128, margin_px=4))
    assert len(warped.patches) == 1
    assert warped.patches.crs == same.patches.crs
    g_same, g_warp = same.patches.geometry.iloc[0], warped.patches.geometry.iloc[0]
    assert g_same.intersection(g_warp).area / g_same.union(g_warp).area > 0.93
    assert warped.patches.area_m2.iloc[0] == pytest.approx(3600, rel=0.05)


def test_nodata_cloud_mask_and_edges_never_make_patches(tmp_path: Path) -> None:
    h = w = 200
    painted = np.zeros((h, w), bool)
    painted[20:60, 20:60] = True  # a real site
    painted[100:140, 20:60] = True  # under a nodata hole of the after image
    painted[100:140, 120:160] = True  # under a cloud flagged by the mask band
    painted[0:50, 170:200] = True  # touches the image edge
    before, after = marker_pair(h, w, painted)
    after = after.copy()
    after[:, 95:145, 15:65] = 7
    valid = np.ones((h, w), bool)
    valid[95:145, 115:165] = False
    b = write_tif(tmp_path / "b.tif", before)
    a = write_tif(tmp_path / "a.tif", after, nodata=7, mask=None)
    # nodata hole: the painted block is replaced by nodata, so only the other three can appear
    res = detect_pair(b, a, None, options=DetectOptions(match_histograms=False, min_area_m2=10),
                      model=MarkerModel(tile_size=96, margin_px=4))
    assert not any(g.intersects(box(GK_ORIGIN[0] + 15, GK_ORIGIN[1] - 145, GK_ORIGIN[0] + 65,
                                    GK_ORIGIN[1] - 95)) for g in res.patches.geometry)
    # the cloud mask band: the masked site disappears, the others stay
    a2 = write_tif(tmp_path / "a2.tif", marker_pair(h, w, painted)[1], mask=valid)
    res2 = detect_pair(b, a2, None, options=DetectOptions(match_histograms=False, min_area_m2=10),
                       model=MarkerModel(tile_size=96, margin_px=4))
    cloud = box(GK_ORIGIN[0] + 115, GK_ORIGIN[1] - 165, GK_ORIGIN[0] + 165, GK_ORIGIN[1] - 95)
    assert not any(g.intersects(cloud) for g in res2.patches.geometry)
    assert len(res2.patches) == 3
    # border pixels are not used: the edge site stops short of the image edge
    right_edge = GK_ORIGIN[0] + w
    assert all(g.bounds[2] <= right_edge - 2 for g in res2.patches.geometry)


def test_ids_are_stable_and_independent_of_tiling(tmp_path: Path) -> None:
    mask = _square_mask(200, 200, 30, 30, 90) | _square_mask(200, 200, 150, 20, 30)
    before, after = marker_pair(200, 200, mask)
    b, a = write_tif(tmp_path / "b.tif", before), write_tif(tmp_path / "a.tif", after)
    runs = [
        detect_pair(b, a, None, options=ORACLE, model=MarkerModel(tile_size=t, margin_px=4)).patches
        for t in (48, 64, 48)
    ]
    ids = [list(r.patch_id) for r in runs]
    assert ids[0] == ids[1] == ids[2] and len(set(ids[0])) == 2


def test_baseline_finds_new_bare_soil_on_a_field_and_writes_every_format(tmp_path: Path) -> None:
    before, after = field_scene(squares=[(80, 80, 40, 40), (20, 150, 30, 60)])
    b = write_tif(tmp_path / "2023-06-01_b.tif", before, order="bgrn")
    a = write_tif(tmp_path / "2024-06-01_a.tif", after, order="bgrn")
    for ext in ("gpkg", "geojson", "shp"):
        options = DetectOptions(model="baseline", prob_out=tmp_path / f"prob_{ext}.tif")
        res = detect_pair(b, a, tmp_path / f"p.{ext}", options=options)
        assert len(res.patches) == 2
        back = pyogrio.read_dataframe(tmp_path / f"p.{ext}")
        assert len(back) == 2 and back.crs.to_epsg() == 4548
        assert {"patch_id", "area_m2", "area_mu", "lon", "lat", "confidence", "conf_max"} <= set(back.columns)
    areas = sorted(res.patches.area_m2)
    assert areas[0] == pytest.approx(1600, rel=0.2) and areas[1] == pytest.approx(1800, rel=0.2)
    assert res.patches.before_date.iloc[0] == "2023-06-01" and res.patches.after_date.iloc[0] == "2024-06-01"
    assert res.patches.model.iloc[0] == "baseline@1" and (res.patches.confidence > 0.5).all()
    with rasterio.open(tmp_path / "prob_shp.tif") as prob:
        assert prob.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and prob.nodata == 255
        assert prob.read(1)[100, 100] > 50 and prob.read(1)[10, 10] < 50
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".soilwatch")]


def test_single_date_mode_marks_bare_soil(tmp_path: Path) -> None:
    _, after = field_scene()
    a = write_tif(tmp_path / "a.tif", after)
    res = detect_pair(None, a, tmp_path / "bare.gpkg")
    assert len(res.patches) == 1 and res.patches.change_type.iloc[0] == "bare"
    assert res.patches.source_before.iloc[0] is None


def test_output_crs_option(tmp_path: Path) -> None:
    before, after = marker_pair(100, 100, _square_mask(100, 100, 20, 20, 50))
    b, a = write_tif(tmp_path / "b.tif", before), write_tif(tmp_path / "a.tif", after)
    opts = DetectOptions(match_histograms=False, out_crs="EPSG:4490", min_area_m2=10)
    res = detect_pair(b, a, tmp_path / "p.geojson", options=opts, model=MarkerModel())
    assert res.patches.crs.to_epsg() == 4490
    assert res.patches.geometry.iloc[0].bounds[0] == pytest.approx(res.patches.lon.iloc[0], abs=0.001)


def test_a_brighter_after_image_is_not_a_disturbance(tmp_path: Path) -> None:
    before, after = field_scene(squares=[(80, 80, 40, 40)])
    brighter = np.clip(after.astype(np.float32) * 1.35 + 25, 0, 255).astype(np.uint8)  # other sensor, other sun
    b = write_tif(tmp_path / "b.tif", before)
    a = write_tif(tmp_path / "a.tif", brighter)
    found = detect_pair(b, a, None).patches  # the default: the learned model
    assert len(found) == 1 and found.area_m2.iloc[0] == pytest.approx(1600, rel=0.25)
    spectral = detect_pair(b, a, None, options=DetectOptions(model="baseline")).patches
    assert len(spectral) == 1 and spectral.area_m2.iloc[0] == pytest.approx(1600, rel=0.25)
    # without the radiometric normalisation the spectral rule would light up the whole field
    raw = detect_pair(b, a, None, options=DetectOptions(model="baseline", match_histograms=False)).patches
    assert raw.area_m2.sum() > 5 * spectral.area_m2.sum()


def test_worker_threads_give_the_same_patches_as_one(tmp_path: Path) -> None:
    # many small windows read concurrently: each thread must use its own GDAL handles
    before, after = field_scene(400, 400, squares=[(30, 30, 50, 50), (200, 150, 80, 60), (330, 300, 40, 90)])
    b = write_tif(tmp_path / "b.tif", before)
    a = write_tif(tmp_path / "a.tif", after, compress="lzw")
    runs = [detect_pair(b, a, None, options=DetectOptions(workers=w, tile_size=96)).patches for w in (1, 3, 3)]
    assert len(runs[0]) == 3
    assert list(runs[0].patch_id) == list(runs[1].patch_id) == list(runs[2].patch_id)


def test_outputs_get_ordinary_file_permissions(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    import os
    import stat

    detect_pair(*pair, tmp_path / "p.gpkg", options=DetectOptions(prob_out=tmp_path / "prob.tif"))
    umask = os.umask(0)
    os.umask(umask)
    for name in ("p.gpkg", "prob.tif"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask


def test_work_units_join_into_the_same_patches_as_one_run(tmp_path: Path) -> None:
    import pickle

    from detector.pipeline import detect_unit, finish_patches, plan_detection, prepare_model

    before, after = field_scene(360, 360, squares=[(90, 90, 60, 60), (10, 200, 40, 150), (250, 20, 90, 40)])
    b, a = write_tif(tmp_path / "b.tif", before), write_tif(tmp_path / "a.tif", after)
    opts = DetectOptions(model="baseline", tile_size=128)
    whole = detect_pair(b, a, None, options=opts).patches
    model = prepare_model(opts)
    plan = pickle.loads(pickle.dumps(plan_detection(b, a, options=opts, model=model)))  # it travels to workers
    units = plan.units(unit_px=120)
    assert len(units) == 9 and plan.units(unit_px=120) == units
    fragments = [f for u in units for f in pickle.loads(pickle.dumps(detect_unit(plan, u)))]
    joined = finish_patches(plan, fragments)
    assert len(whole) == 3
    assert list(joined.patch_id) == list(whole.patch_id)
    assert list(joined.area_m2) == list(whole.area_m2)


def test_tall_and_wide_images_are_scanned_to_their_last_row_and_column(tmp_path: Path) -> None:
    from detector.align import Grid

    for h, w in ((300, 120), (120, 300)):
        mask = np.zeros((h, w), bool)
        mask[h - 40 : h - 10, w - 40 : w - 10] = True  # a site in the far corner
        before, after = marker_pair(h, w, mask)
        b, a = write_tif(tmp_path / f"b{h}.tif", before), write_tif(tmp_path / f"a{h}.tif", after)
        with rasterio.open(b) as src:
            assert Grid(src.crs, src.transform, w, h).bounds == tuple(src.bounds)
        res = detect_pair(b, a, None, options=ORACLE, model=MarkerModel(tile_size=64, margin_px=4))
        assert res.area_window.height == h and res.area_window.width == w
        assert len(res.patches) == 1 and res.patches.area_m2.iloc[0] == pytest.approx(900, rel=0.01)
