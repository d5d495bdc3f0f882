"""Finding, reading and normalising labelled pairs (training.data) on a fake dataset in the real layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.training.fake_data import SPARSE_VALID_ROWS, TIF_CHANGES, H, W
from training.data import (
    ChangeSetDataset,
    index_data,
    iter_pairs,
    normalise_pair,
    read_image,
    read_pair,
    resolution_for_set,
)
from training.errors import DataReadError, DatasetLayoutError, DatasetNotFoundError, TrainingError


def test_index_finds_change_sets_and_skips_other_folders(fake_data: Path) -> None:
    index = index_data(fake_data)
    assert list(index.sets) == ["pngset", "sparse", "tifset"]
    assert set(index.skipped) == {"geotiff", "landcover_x"}
    assert [p.name for p in index.sets["pngset"]] == ["p0", "p1"]
    assert index.sets["sparse"][0].valid is not None and index.sets["pngset"][0].valid is None
    assert index.n_pairs == 4


def test_pairs_come_out_as_models_expect(fake_data: Path) -> None:
    pairs = {p.name: p for p in iter_pairs(fake_data)}
    png, tif = pairs["p0"], pairs["city"]
    assert png.bands == ("red", "green", "blue")
    assert tif.bands == ("red", "green", "blue", "nir", "swir1", "swir2")
    for p in (png, tif):
        assert p.before.dtype == p.after.dtype == np.float32 and p.before.shape == (len(p.bands), H, W)
        assert p.before.min() >= 0.0 and p.after.max() <= 1.0
        assert p.label.dtype == bool and p.valid.dtype == bool and p.label.shape == (H, W)
    r0, r1, c0, c1 = TIF_CHANGES["city"][0]
    assert tif.label[r0:r1, c0:c1].all() and tif.label.sum() == (r1 - r0) * (c1 - c0)
    # the red band (B04, third in the file) is the one that rises in the changed rectangle
    assert tif.after[0, r0:r1, c0:c1].min() > 0.9 and tif.after[1:, r0:r1, c0:c1].max() < 0.3
    assert tif.resolution_m == pytest.approx(10.0)
    assert png.resolution_m == 1.0  # "pngset" is in no table: the fallback


def test_geotiff_bands_are_reordered_from_descriptions(fake_data: Path) -> None:
    img = read_image(fake_data / "tifset" / "B" / "city.tif")
    r0, r1, c0, c1 = TIF_CHANGES["city"][0]
    assert img.bands[:3] == ("red", "green", "blue")
    assert img.data[0, r0, c0] == 9000 and img.data[2, r0, c0] == 300  # red first, blue (B02) third


def test_sparse_valid_mask_limits_the_label(fake_data: Path) -> None:
    (pair,) = iter_pairs(fake_data, ["sparse"])
    assert pair.valid[:SPARSE_VALID_ROWS].all() and not pair.valid[SPARSE_VALID_ROWS:].any()
    assert not pair.label[SPARSE_VALID_ROWS:].any() and pair.label[10:SPARSE_VALID_ROWS, 10:30].all()
    # the image itself is not blanked outside the labelled rows
    assert pair.before[:, SPARSE_VALID_ROWS:].max() > 0


def test_sample_form(fake_data: Path) -> None:
    ds = ChangeSetDataset(fake_data, ["tifset"])
    assert len(ds) == 1
    s = ds[0]
    assert s["image"].shape == (2, 6, H, W) and s["image"].dtype == np.float32
    assert s["mask"].shape == (1, H, W) and set(np.unique(s["mask"])) <= {0, 1}
    assert s["valid"].shape == (1, H, W)


def test_missing_folder_and_unknown_set_are_clear(tmp_path: Path, fake_data: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        index_data(tmp_path / "nope")
    with pytest.raises(DatasetNotFoundError, match=r"'nosuch'.*available"):
        index_data(fake_data, ["nosuch"])
    with pytest.raises(DatasetNotFoundError, match="not a change set"):
        index_data(fake_data, ["geotiff"])


def test_broken_file_names_the_file(broken_data: Path) -> None:
    index = index_data(broken_data, ["pngset"])
    with pytest.raises(DataReadError, match=r"p1\.png") as info:
        read_pair(index.sets["pngset"][1])
    assert isinstance(info.value, TrainingError) and isinstance(info.value, OSError)


def test_incomplete_pair_and_bad_label_values(fake_data: Path) -> None:
    (fake_data / "pngset" / "label" / "p1.png").unlink()
    with pytest.raises(DatasetLayoutError, match=r"'p1' lacks label"):
        index_data(fake_data, ["pngset"])
    lab = np.zeros((H, W), dtype=np.uint8)
    lab[0, 0] = 1
    Image.fromarray(lab).save(fake_data / "pngset" / "label" / "p1.png")
    with pytest.raises(DataReadError, match=r"values \[0, 1\]"):
        read_pair(index_data(fake_data, ["pngset"]).sets["pngset"][1])


def test_normalise_pair_scales_before_and_matches_after() -> None:
    rng = np.random.default_rng(1)
    before = rng.uniform(100, 200, size=(3, 50, 60))
    after = before * 1.5 + 30  # same scene, other gain and offset
    b01, a01 = normalise_pair(before, after)
    assert b01.dtype == a01.dtype == np.float32
    np.testing.assert_allclose(a01, b01, atol=1e-3)  # the linear mapping removes gain and offset
    # one common gain: the 99th percentile of the brightest band maps to 0.8, ratios are kept
    assert np.quantile(b01, 0.99) == pytest.approx(0.8, abs=0.01)
    np.testing.assert_allclose(b01[0] / b01[1], before[0] / before[1], rtol=1e-4)
    valid = np.ones((50, 60), dtype=bool)
    valid[:5] = False
    b01, a01 = normalise_pair(before, after, valid)
    assert not b01[:, :5].any() and not a01[:, :5].any()
    with pytest.raises(ValueError, match="one shape"):
        normalise_pair(before, after[:1])


def test_normalise_pair_keeps_a_new_bright_site() -> None:
    before = np.full((3, 60, 60), 80.0) + np.random.default_rng(2).normal(0, 3, (3, 60, 60))
    after = before.copy()
    after[:, 10:20, 10:20] = 200.0  # 3 % of the pixels changed
    b01, a01 = normalise_pair(before, after)
    assert a01[:, 15, 15].min() > b01[:, 15, 15].max() + 0.2


def test_default_resolution_table() -> None:
    assert resolution_for_set("sztaki_airchange") == 1.5
    assert resolution_for_set("dsifn_changeformer") == 2.0
    assert resolution_for_set("levircd_bit") == 0.5
    assert resolution_for_set("oscd_s2") == 10.0
    assert resolution_for_set("mine") is None
