"""The detector's fast array paths give exactly what the straightforward library calls give."""

import numpy as np
import pytest
import shapely
from scipy import ndimage
from shapely.geometry import Polygon

from detector.pipeline import _pad, _pad_in_place
from detector.radiometry import Normaliser
from detector.vectorize import _CROSS, clean_mask, vectorize_tile


def _scipy_clean(binary: np.ndarray, valid: np.ndarray, open_px: int, close_px: int) -> np.ndarray:
    out = binary & valid
    if open_px:
        out = ndimage.binary_opening(out, structure=_CROSS, iterations=open_px)
    if close_px:
        out = ndimage.binary_closing(out, structure=_CROSS, iterations=close_px, border_value=0)
    return out & valid


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (6, 1), (3, 3), (40, 57)])
@pytest.mark.parametrize("open_px,close_px", [(0, 0), (1, 1), (2, 1), (0, 2), (1, 0)])
def test_clean_mask_is_scipys_opening_and_closing(shape: tuple[int, int], open_px: int, close_px: int) -> None:
    rng = np.random.default_rng(sum(shape) + 7 * open_px + close_px)
    for density in (0.3, 0.6, 0.9):
        binary = ndimage.uniform_filter(rng.random(shape), 3) < density * 0.8
        binary[0, 0] = True  # something at the very edge
        valid = rng.random(shape) < 0.97
        got = clean_mask(binary, valid, open_px=open_px, close_px=close_px)
        # clean_mask works on the bounding box plus a margin; on the whole array the result is the same
        np.testing.assert_array_equal(got, _scipy_clean(binary, valid, open_px, close_px))


@pytest.mark.parametrize(
    "pad", [(0, 0, 0, 0), (10, 0, 0, 0), (0, 7, 3, 0), (4, 4, 4, 4), (3, 20, 5, 1), (40, 2, 0, 33)]
)
@pytest.mark.parametrize("hw", [(30, 25), (5, 5), (12, 40)])
def test_pad_in_place_is_symmetric_np_pad(pad: tuple[int, int, int, int], hw: tuple[int, int]) -> None:
    h, w = hw
    data = np.random.default_rng(h * w).random((2, 3, h, w)).astype(np.float32)
    want = _pad(data, pad)
    top, _, left, _ = pad
    buf = np.full(want.shape, np.nan, dtype=np.float32)
    buf[..., top : top + h, left : left + w] = data
    _pad_in_place(buf, pad)
    np.testing.assert_array_equal(buf, want)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32", "float64", "int32"])
def test_normaliser_writes_in_place_the_same_values(dtype: str) -> None:
    rng = np.random.default_rng(3)
    img = (rng.random((4, 9, 11)) * 3000).astype(dtype)
    gain, offset = np.array([1.1, 0.9, 1.0, 1.3], np.float32), np.array([-40.0, 12.5, 0.0, 80.0], np.float32)
    norm = Normaliser(scale_to_one=2500.0, gain=gain, offset=offset)
    out = np.empty((2, 4, 12, 14), np.float32)
    a = norm.match_and_scale(img, out=out[1, :, 2:11, 1:12])
    b = norm.scale(img, out=out[0, :, 2:11, 1:12])
    np.testing.assert_array_equal(a, norm.match_and_scale(img))
    np.testing.assert_array_equal(b, norm.scale(img))
    assert np.shares_memory(a, out) and np.shares_memory(b, out)


def test_vectorize_leaves_out_small_fragments_away_from_seams() -> None:
    mask = np.zeros((20, 30), dtype=bool)
    mask[2:4, 2:4] = True  # 4 px, inside
    mask[10:18, 10:20] = True  # 80 px, inside
    mask[0:2, 25:27] = True  # 4 px on the top edge (a seam)
    prob = mask.astype(np.float32) * 0.8
    kw = {"col_off": 100, "row_off": 50, "seam_edges": (True, False, False, False)}
    every = vectorize_tile(prob, mask, **kw)
    kept = vectorize_tile(prob, mask, **kw, min_px=10)
    assert sorted(f.n_px for f in every) == [4, 4, 80]
    assert sorted((f.n_px, f.on_seam) for f in kept) == [(4, True), (80, False)]
    big = next(f for f in kept if f.n_px == 80)
    assert big.geometry.area == 80 and big.geometry.bounds == (110.0, 60.0, 120.0, 68.0)


@pytest.mark.parametrize("masked", [False, True])
def test_sample_and_reads_are_the_same_with_threads_and_masks(tmp_path, masked: bool) -> None:
    from rasterio.windows import Window

    from detector.io import PairSource, inspect_raster
    from tests.fixtures import write_tif

    rng = np.random.default_rng(5)
    data = (rng.random((4, 200, 230)) * 4000).astype(np.uint16)
    mask = np.ones((200, 230), bool)
    mask[50:80, 100:190] = False
    before = write_tif(tmp_path / "b.tif", data, mask=mask if masked else None)
    after = write_tif(tmp_path / "a.tif", data[:, ::-1].copy())
    area = Window(0, 0, 230, 200)
    with PairSource(inspect_raster(before), inspect_raster(after)) as src:
        one = src.sample(area, max_pixels=100, cells=4, cell=40)
        two = src.sample(area, max_pixels=100, cells=4, cell=40, workers=3)
        _, _, valid = src.read(area)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(valid, mask if masked else np.ones_like(mask))


def _odd_polygons() -> list:
    import shapely
    from shapely.geometry import Polygon, box

    rng = np.random.default_rng(11)
    out = [box(0, 0, 1, 1), box(0, 0, 30, 0.5), box(5, 5, 25, 25).difference(box(10, 10, 12, 12))]
    ring = box(0, 0, 40, 40).difference(box(5, 5, 35, 35))  # a frame: one big hole
    out.append(ring)
    for _ in range(30):  # pixel-staircase blobs like the polygoniser makes
        m = np.zeros((30, 30), bool)
        r, c = rng.integers(0, 20, 2)
        m[r : r + rng.integers(2, 10), c : c + rng.integers(2, 10)] = True
        m[rng.integers(0, 30), :] = rng.random() < 0.5
        cells = [box(j, i, j + 1, i + 1) for i, j in zip(*np.nonzero(m), strict=True)]
        g = shapely.union_all(cells)
        out.extend(p for p in getattr(g, "geoms", [g]) if isinstance(p, Polygon))
    return out


def _tidy_one(
    geom: Polygon, *, min_hole_px: float, min_width_px: float = 1.5, simplify_px: float = 0.5
) -> Polygon | None:
    """The straightforward one-polygon version of ``tidy_many``, as it stood in detector.vectorize until 2026-12-03."""
    holes = [h for h in geom.interiors if Polygon(h).area >= min_hole_px]
    geom = shapely.normalize(Polygon(geom.exterior, holes))
    if geom.length == 0 or 2 * geom.area / geom.length < min_width_px:
        return None
    simple = geom.simplify(simplify_px, preserve_topology=True)
    if simple.is_empty or not simple.is_valid:
        simple = shapely.make_valid(simple)
        polys = [g for g in getattr(simple, "geoms", [simple]) if isinstance(g, Polygon)]
        if not polys:
            return None
        simple = max(polys, key=lambda g: g.area)
    return simple


def test_tidy_many_is_tidy_of_each() -> None:
    from detector.vectorize import tidy_many

    geoms = _odd_polygons()
    for min_hole in (1.0, 5.0, 50.0):
        want = [_tidy_one(g, min_hole_px=min_hole) for g in geoms]
        got = tidy_many(geoms, min_hole_px=min_hole)
        assert [None if g is None else g.wkb for g in got] == [None if g is None else g.wkb for g in want]
    assert tidy_many([], min_hole_px=1.0) == []


def test_geodesic_area_and_patch_table_are_unchanged_by_the_array_paths() -> None:
    import shapely
    from pyproj import Geod
    from rasterio.crs import CRS

    from detector.patches import PatchSource, _patch_id, build_patches, geodesic_area_m2, to_lonlat
    from tests.fixtures import GK_CRS, GK_ORIGIN

    geoms = [
        shapely.affinity.translate(shapely.affinity.scale(g, 3, 3, origin=(0, 0)), *GK_ORIGIN) for g in _odd_polygons()
    ]
    lonlat = to_lonlat(geoms, CRS.from_user_input(GK_CRS))
    lonlat.append(shapely.union_all([lonlat[0], shapely.affinity.translate(lonlat[1], 0.01, 0)]))  # a multipolygon
    geod = Geod(ellps="GRS80")
    want = [abs(geod.geometry_area_perimeter(g)[0]) for g in lonlat]
    np.testing.assert_array_equal(geodesic_area_m2(lonlat), want)
    source = PatchSource("2023-06-01", "2024-06-01", "b.tif", "a.tif", "m@1")
    n = len(geoms)
    one = build_patches(
        geoms, [100] * n, [50.0] * n, [0.9] * n, crs=CRS.from_user_input(GK_CRS), source=source, min_area_m2=5
    )
    two = build_patches(
        geoms,
        [100] * n,
        [50.0] * n,
        [0.9] * n,
        crs=CRS.from_user_input(GK_CRS),
        source=source,
        min_area_m2=5,
        workers=3,
    )
    assert one.drop(columns="geometry").equals(two.drop(columns="geometry")) and len(one) > 20
    ids = {_patch_id("2024", g, source) for g, a in zip(lonlat[:n], want[:n], strict=True) if a >= 5}
    assert set(one.patch_id) == ids


def test_in_chunks_keeps_order() -> None:
    from detector.patches import in_chunks

    seen: list[int] = []

    def double(chunk: list[int]) -> list[int]:
        seen.append(len(chunk))
        return [x * 2 for x in chunk]

    assert in_chunks(double, list(range(1000)), 3) == [x * 2 for x in range(1000)]
    assert sorted(seen) == [332, 334, 334]
    assert in_chunks(double, [], 3) == []


def test_fit_normaliser_is_the_same_with_threads() -> None:
    from detector.radiometry import fit_normaliser

    rng = np.random.default_rng(8)
    before = (rng.random((4, 300, 300)) * 3000).astype(np.uint16)
    after = (before * 1.1 + 40 + rng.normal(0, 30, before.shape)).clip(0, 65535).astype(np.uint16)
    after[:, 100:160, 100:200] = 3900  # a new bright site
    valid = np.ones((300, 300), bool)
    one = fit_normaliser(before, after, valid)
    two = fit_normaliser(before, after, valid, workers=3)
    assert one.scale_to_one == two.scale_to_one
    np.testing.assert_array_equal(one.gain, two.gain)
    np.testing.assert_array_equal(one.offset, two.offset)
