"""Radiometric normalisation: gain/offset recovered on unchanged ground, changes kept, one common scale."""

import numpy as np
import pytest

from detector.radiometry import fit_normaliser


def _scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.rint(rng.gamma(4.0, 200.0, size=(4, 120, 120))).astype(np.float32)  # uint16-like reflectance


@pytest.mark.parametrize("changed_share", [0.0, 0.1, 0.3])
def test_gain_and_offset_are_recovered_despite_changes(changed_share: float) -> None:
    before = _scene()
    after = before * np.array([1.3, 0.8, 1.1, 0.9], np.float32)[:, None, None] + 150
    n = int(120 * changed_share)
    after[:, :n, :] = 4000.0  # a large new bright site
    norm = fit_normaliser(before, after, np.ones((120, 120), bool))
    np.testing.assert_allclose(norm.gain, [1 / 1.3, 1 / 0.8, 1 / 1.1, 1 / 0.9], rtol=0.03)
    b01, a01 = norm.apply(before, after)
    assert b01 is not None
    np.testing.assert_allclose(a01[:, n:], b01[:, n:], atol=0.02)  # unchanged ground matches
    assert n == 0 or a01[:, :n].mean() > b01[:, :n].mean() + 0.3  # the site stays


def test_apply_equals_scale_of_match_and_keeps_band_ratios() -> None:
    before, after = _scene(1), _scene(2)
    norm = fit_normaliser(before, after, np.ones((120, 120), bool))
    b01, a01 = norm.apply(before.astype(np.uint16), after.astype(np.uint16))
    np.testing.assert_allclose(b01, norm.scale(before.astype(np.uint16)), atol=1e-6)
    np.testing.assert_allclose(a01, norm.scale(norm.match(after.astype(np.uint16))), atol=1e-6)
    unclipped = (b01 > 0) & (b01 < 1)
    ratio = b01[0] / np.maximum(b01[1], 1e-6)
    both = unclipped[0] & unclipped[1]
    np.testing.assert_allclose(ratio[both], (before[0] / before[1])[both], rtol=1e-3)


def test_single_date_and_too_few_pixels() -> None:
    after = _scene(3)
    norm = fit_normaliser(None, after, np.ones((120, 120), bool))
    b01, a01 = norm.apply(None, after)
    assert b01 is None and a01.max() <= 1 and np.quantile(a01[:3], 0.99) == pytest.approx(0.8, abs=0.05)
    with pytest.raises(ValueError, match="valid pixels"):
        fit_normaliser(after, after, np.zeros((120, 120), bool))
