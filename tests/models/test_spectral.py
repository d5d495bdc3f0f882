"""Contract and behaviour of the spectral baseline."""

import numpy as np
import pytest

from models import BandsError, ChangeModel, get_model, list_models
from models.spectral import SpectralConfig

RGBN = ["red", "green", "blue", "nir"]


def _field_and_soil(h: int = 64, w: int = 64) -> np.ndarray:
    """(2, 4, h, w): green crop everywhere before; a bare-soil square in the after image."""
    crop = np.array([0.10, 0.30, 0.08, 0.60], dtype=np.float32)  # red, green, blue, nir
    soil = np.array([0.55, 0.45, 0.35, 0.40], dtype=np.float32)
    x = np.empty((2, 4, h, w), dtype=np.float32)
    x[:] = crop[None, :, None, None]
    x[1, :, 16:48, 16:48] = soil[:, None, None]
    return x


@pytest.mark.parametrize("name", list_models())
def test_every_model_honours_the_shape_contract(name: str) -> None:
    model = get_model(name)
    assert isinstance(model, ChangeModel)
    x = np.random.default_rng(0).random((3, 2, 3, 40, 48), dtype=np.float32)
    y = model.predict(x, ["red", "green", "blue"])
    assert y.shape == (3, 40, 48) and y.dtype == np.float32
    assert np.all((y >= 0) & (y <= 1))


@pytest.mark.parametrize("bands", [RGBN, RGBN[:3]])
def test_baseline_flags_new_bare_soil_and_not_the_unchanged_field(bands: list[str]) -> None:
    x = _field_and_soil()[:, : len(bands)][None]
    prob = get_model("baseline").predict(x, bands)[0]
    assert prob[24:40, 24:40].min() > 0.7
    assert prob[:8].max() < 0.1


def test_baseline_ignores_greening_up() -> None:
    x = _field_and_soil()
    swapped = x[::-1].copy()[None]  # soil turned into crop: vegetation gain, not disturbance
    prob = get_model("baseline").predict(swapped, RGBN)[0]
    assert prob.max() < 0.1


def test_single_date_mode_finds_bare_soil() -> None:
    x = _field_and_soil()[1:][None]
    prob = get_model("baseline").predict(x, RGBN)[0]
    assert prob[24:40, 24:40].min() > 0.5 and prob[:8].max() < 0.1


def test_bad_bands_and_config_are_named() -> None:
    with pytest.raises(BandsError, match="red, green, blue"):
        get_model("baseline").predict(np.zeros((1, 2, 3, 8, 8), np.float32), ["blue", "green", "red"])
    with pytest.raises(ValueError, match="unknown baseline settings"):
        SpectralConfig.from_mapping({"w_vegdrop": 1})
    with pytest.raises(ValueError, match="positive"):
        SpectralConfig(score_scale=0)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_box_mean_is_scipys_uniform_filter_to_the_bit(k: int) -> None:
    # the baseline's output feeds a trained network: the fast box filter must not change a value
    from scipy import ndimage

    from models.spectral import _box_mean

    img = np.random.default_rng(k).random((3, 37, 52), dtype=np.float32)
    want = ndimage.uniform_filter(img, size=(1, k, k), mode="nearest")
    np.testing.assert_array_equal(_box_mean(img, k), want)
    np.testing.assert_array_equal(_box_mean(img[0], k), ndimage.uniform_filter(img[0], size=k, mode="nearest"))
