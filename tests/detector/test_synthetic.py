"""Tests for the synthetic bi-temporal scene generator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from detector.synthetic import (
    BAND_NAMES,
    LandCover,
    SceneSpec,
    SyntheticScene,
    make_scene,
    make_spec,
    render_classes,
    render_window,
)

H, W = 384, 448


@pytest.fixture(scope="module")
def spec() -> SceneSpec:
    return make_spec(height=H, width=W, resolution_m=1.0, seed=10, site_density=3.0)


@pytest.fixture(scope="module")
def whole(spec: SceneSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return render_window(spec, row_off=0, col_off=0, height=H, width=W)


@pytest.fixture(scope="module")
def classes(spec: SceneSpec) -> tuple[np.ndarray, np.ndarray]:
    return render_classes(spec, row_off=0, col_off=0, height=H, width=W)


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_shapes_and_dtypes(dtype: str) -> None:
    scene = make_scene(height=96, width=128, resolution_m=2.0, seed=1, dtype=dtype)
    assert isinstance(scene, SyntheticScene)
    assert scene.before.shape == scene.after.shape == (4, 96, 128)
    assert scene.before.dtype == scene.after.dtype == np.dtype(dtype)
    assert scene.change.shape == (96, 128) and scene.change.dtype == np.uint8
    assert set(np.unique(scene.change)) <= {0, 1}
    assert scene.band_names == BAND_NAMES == ("red", "green", "blue", "nir")
    if dtype == "uint16":
        assert scene.after.max() <= 10000
    for site in scene.sites:
        assert {"kind", "area_m2", "bbox"} <= set(site)


def test_determinism() -> None:
    a = make_scene(height=128, width=128, seed=3)
    b = make_scene(height=128, width=128, seed=3)
    c = make_scene(height=128, width=128, seed=4)
    assert a.spec == b.spec
    for x, y in ((a.before, b.before), (a.after, b.after), (a.change, b.change)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.before, c.before)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(r=st.integers(0, H - 1), c=st.integers(0, W - 1), h=st.integers(1, 160), w=st.integers(1, 160),
       dtype=st.sampled_from(["uint8", "uint16"]))
def test_window_equals_crop_of_whole(spec: SceneSpec, whole: tuple[np.ndarray, ...], r: int, c: int, h: int,
                                     w: int, dtype: str) -> None:
    h, w = min(h, H - r), min(w, W - c)
    full = whole if dtype == "uint8" else render_window(spec, row_off=0, col_off=0, height=H, width=W, dtype=dtype)
    part = render_window(spec, row_off=r, col_off=c, height=h, width=w, dtype=dtype)
    np.testing.assert_array_equal(part[0], full[0][:, r:r + h, c:c + w])
    np.testing.assert_array_equal(part[1], full[1][:, r:r + h, c:c + w])
    np.testing.assert_array_equal(part[2], full[2][r:r + h, c:c + w])


@pytest.mark.parametrize("resolution_m", [0.5, 3.0, 10.0])
def test_blocks_tile_the_scene_at_any_resolution(resolution_m: float) -> None:
    spec = make_spec(height=200, width=260, resolution_m=resolution_m, seed=11)
    full = render_window(spec, row_off=0, col_off=0, height=200, width=260, dtype="uint16")
    for r, c in ((0, 0), (0, 130), (100, 0), (100, 130)):
        part = render_window(spec, row_off=r, col_off=c, height=100, width=130, dtype="uint16")
        for x, y in zip(part, full, strict=True):
            np.testing.assert_array_equal(x, y[..., r:r + 100, c:c + 130])


def test_change_components_match_site_list(spec: SceneSpec, whole: tuple[np.ndarray, ...]) -> None:
    change = whole[2]
    records = spec.site_records()
    assert change.any() and len(records) >= 2
    labels, n = ndimage.label(change)
    assert n == len(records)  # sites never touch, so each is one component
    for site in records:
        r0, c0, r1, c1 = site["bbox"]
        ids = np.unique(labels[r0:r1, c0:c1])
        ids = ids[ids > 0]
        assert len(ids) == 1, site
        pixels = (labels == ids[0]).sum()
        assert pixels == pytest.approx(site["area_m2"], rel=0.15, abs=20), site
        ys, xs = np.nonzero(labels == ids[0])
        assert r0 <= ys.min() and ys.max() < r1 and c0 <= xs.min() and xs.max() < c1


def test_sites_scale_with_density_and_area() -> None:
    def count(d: float) -> int:
        return sum(len(make_spec(height=1000, width=1000, seed=s, site_density=d).site_records()) for s in range(5))
    assert count(0.0) == 0
    assert 10 <= count(1.0) < count(3.0)
    assert any(not s.is_new for seed in range(5) for s in make_spec(height=1000, width=1000, seed=seed).sites)


def test_ploughed_fields_look_like_soil_but_are_not_change() -> None:
    # Ploughing between the dates: bare brown soil in a field after, label 0.
    found = 0
    for seed in range(4):
        spec = make_spec(height=256, width=256, resolution_m=1.0, seed=seed)
        _, after, change = render_window(spec, row_off=0, col_off=0, height=256, width=256)
        k0, k1 = render_classes(spec, row_off=0, col_off=0, height=256, width=256)
        newly = (k1 == LandCover.PLOUGHED) & (k0 != LandCover.PLOUGHED)
        if newly.sum() < 200:
            continue
        assert not change[newly].any()
        r, g, b, nir = (after[i][newly].astype(float).mean() for i in range(4))
        assert r > g > b and r > 90  # brownish soil, not vegetation
        assert nir < 200
        found += 1
    assert found >= 1


def test_construction_soil_is_brighter_than_ploughing(spec: SceneSpec, whole: tuple[np.ndarray, ...],
                                                      classes: tuple[np.ndarray, ...]) -> None:
    after = whole[1].astype(float)
    soil = (classes[1] == LandCover.SITE) & (whole[2] == 1)
    ploughed = classes[1] == LandCover.PLOUGHED
    assert soil.sum() > 100 and ploughed.sum() > 100
    assert after[:3, soil].mean() > after[:3, ploughed].mean() + 15


def test_nir_behaviour(whole: tuple[np.ndarray, ...], classes: tuple[np.ndarray, ...]) -> None:
    before = whole[0].astype(float)
    red, nir = before[0], before[3]
    crop = classes[0] == LandCover.CROP
    assert crop.sum() > 1000
    assert (nir[crop] > red[crop]).mean() > 0.95
    assert nir[crop].mean() > 2 * red[crop].mean()
    water = classes[0] == LandCover.WATER
    if water.sum() > 50:
        assert nir[water].mean() < nir[crop].mean() / 3


def test_nuisances_present(spec: SceneSpec, classes: tuple[np.ndarray, ...]) -> None:
    k0, k1 = classes
    changed = k0 != k1
    assert changed.any()
    _, _, change = render_window(spec, row_off=0, col_off=0, height=H, width=W)
    # most pixels whose land cover changes are farming, water or haze: label 0
    assert (changed & (change == 0)).sum() > (changed & (change == 1)).sum()
    assert spec.shift_px != (0.0, 0.0) and spec.gain[0] != spec.gain[1]


def test_seasonal_water_and_canopy_change_colour_but_not_the_label() -> None:
    tinted = {"water": 0, "canopy": 0}
    for seed in range(6):
        plain = make_spec(height=256, width=256, resolution_m=4.0, seed=seed, site_density=2.0)  # water at 1 km²
        spec = make_spec(height=256, width=256, resolution_m=4.0, seed=seed, site_density=2.0, seasonal=1.0)
        assert spec.sites == plain.sites and spec.water == plain.water  # the layout does not move
        b0, a0, c0 = render_window(plain, row_off=0, col_off=0, height=256, width=256)
        b1, a1, c1 = render_window(spec, row_off=0, col_off=0, height=256, width=256)
        np.testing.assert_array_equal(c1, c0)  # water and canopy colour are never change
        k0, k1 = render_classes(spec, row_off=0, col_off=0, height=256, width=256)
        for t, (img0, img1, k) in enumerate(((b0, b1, k0), (a0, a1, k1))):
            moved = (img0 != img1).any(axis=0)
            water = k == LandCover.WATER
            canopy = np.isin(k, [LandCover.FOREST, LandCover.ORCHARD])
            if spec.water_tint[t] == (1.0,) * 4 and spec.canopy_tint[t] == (1.0,) * 4:
                assert not moved.any()
                continue
            # blur and the after date's sub-pixel shift reach a pixel or two out, orchard crowns under field tracks
            # and roads (classed track or road) a few more: a handful of pixels per scene
            near = ndimage.binary_dilation(water | canopy, iterations=4)
            assert moved[~near].sum() < 40, np.bincount(k[moved & ~near])  # fields, roads, sites, roofs stay
            if spec.water_tint[t] != (1.0,) * 4 and water.sum() > 50:
                tinted["water"] += int(moved[water].mean() > 0.9)
            if spec.canopy_tint[t] != (1.0,) * 4 and (k == LandCover.FOREST).sum() > 50:
                tinted["canopy"] += int(moved[k == LandCover.FOREST].mean() > 0.9)
    assert tinted["water"] >= 1 and tinted["canopy"] >= 1, tinted
    spec0 = make_spec(height=64, width=64, seed=3, seasonal=0.0)
    assert spec0.water_tint == spec0.canopy_tint == ((1.0,) * 4, (1.0,) * 4)


def test_river_option_puts_water_in_small_fine_scenes() -> None:
    with_water = {"plain": 0, "river": 0}
    for seed in range(8):
        plain = make_spec(height=128, width=128, resolution_m=1.0, seed=seed, site_density=2.0)
        again = make_spec(height=128, width=128, resolution_m=1.0, seed=seed, site_density=2.0, river=0.0)
        assert again == plain  # off: the scene is exactly the one drawn before the option existed
        spec = make_spec(height=128, width=128, resolution_m=1.0, seed=seed, site_density=2.0, river=1.0)
        assert len(spec.water) == len(plain.water) + 1 and spec.water[:len(plain.water)] == plain.water
        for name, s in (("plain", plain), ("river", spec)):
            _, _, change = render_window(s, row_off=0, col_off=0, height=128, width=128)
            k0, k1 = render_classes(s, row_off=0, col_off=0, height=128, width=128)
            water = (k0 == LandCover.WATER) | (k1 == LandCover.WATER)
            with_water[name] += int(water.sum() > 200)
            assert not change[water].any()  # a river and its moving edge are never disturbance
    assert with_water["plain"] <= 1 and with_water["river"] >= 6, with_water


def test_repr_is_short(spec: SceneSpec) -> None:
    text = repr(spec)
    assert text.startswith("SceneSpec(height=384, width=448") and len(text) < 300
    assert "before" not in repr(make_scene(height=32, width=32))


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [({"height": 0}, "height"), ({"width": 2.5}, "width"), ({"resolution_m": 0.0}, "resolution_m"),
     ({"site_density": -1.0}, "site_density"), ({"seasonal": 1.5}, "seasonal"), ({"river": -0.5}, "river")],
)
def test_make_spec_rejects_bad_input(kwargs: dict, bad: str) -> None:
    args = {"height": 64, "width": 64, **kwargs}
    with pytest.raises(ValueError, match=bad):
        make_spec(**args)


def test_render_window_rejects_bad_window(spec: SceneSpec) -> None:
    with pytest.raises(ValueError, match="leaves"):
        render_window(spec, row_off=H - 10, col_off=0, height=20, width=20)
    with pytest.raises(ValueError, match="row_off"):
        render_window(spec, row_off=-1, col_off=0, height=20, width=20)
    with pytest.raises(ValueError, match="dtype"):
        render_window(spec, row_off=0, col_off=0, height=20, width=20, dtype="float32")


def test_large_spec_is_cheap() -> None:
    spec = make_spec(height=10_000, width=10_000, resolution_m=1.0, seed=0)
    assert len(spec.site_records()) > 200
    before, _, _ = render_window(spec, row_off=5000, col_off=7000, height=64, width=64)
    assert before.shape == (4, 64, 64)
