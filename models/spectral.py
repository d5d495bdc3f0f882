"""Training-free spectral change rule: new bare soil = vegetation lost + ground brightened/roughened.

The reference every learned model must beat, and a usable detector on its own. All thresholds are
fields of :class:`SpectralConfig`, so a bureau can tune them (``--model-config baseline.yaml``).

Evidence, per pixel, on the [0, 1] inputs of :mod:`models.base` (both dates on one scale):
- vegetation index: NDVI when a NIR band is present, else the normalised excess-green index
  ``(2g - r - b) / (r + g + b)``, which separates green canopy from soil in RGB imagery;
- ``veg_drop``: before minus after vegetation index (construction strips vegetation);
- ``bright_rise``: after minus before brightness (fresh soil and spoil are brighter than crops);
- ``change``: Euclidean distance between the dates over all bands (change vector magnitude);
- ``texture_rise``: rise of local brightness standard deviation (pits, heaps, site roads).
These are combined linearly into a score, turned into a probability with a logistic function, and
gated by "the after-image is not vegetated", so crops greening up or trees planted are not flagged.

The rule runs on ``bin_px × bin_px`` block means (a cheap, strong smoothing: it tolerates
misregistration and sensor noise, and makes the rule ``bin_px²`` times cheaper); the probability
is interpolated back to full resolution and multiplied by the vegetation gate of each full-resolution
pixel, which keeps patch boundaries on the edge of the bare ground. Window sizes are in binned pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from models.base import RGB, ModelInfo
from models.errors import BandsError

__all__ = ["SpectralConfig", "SpectralBaseline"]

_EPS = 1e-6


@dataclass(frozen=True)
class SpectralConfig:
    """Weights and thresholds of the rule; unitless on the [0, 1] input scale.

    Defaults: the best of a 144-setting grid on the four real change sets together
    (``python -m training.tune_baseline``); scored leave-one-set-out, the same search gives pixel F1
    0.39 dsifn, 0.34 levir, 0.22 oscd, 0.07 sztaki on the held-out set (see models/weights/MODEL_CARD.md).
    """

    bin_px: int = 2  # block-mean factor before the rule runs (full-resolution pixels per side)
    smooth_px: int = 3  # box filter on the binned images before comparing dates
    texture_px: int = 3  # window for local standard deviation, binned pixels
    w_veg_drop: float = 2.5
    w_bright_rise: float = 2.0
    w_change: float = 3.0
    w_texture_rise: float = 1.0
    score_offset: float = 0.45  # score at which probability is 0.5
    score_scale: float = 0.08  # logistic softness of the score
    veg_max_rgb: float = 0.10  # after-image excess-green above this counts as vegetated
    veg_max_nir: float = 0.30  # after-image NDVI above this counts as vegetated
    veg_gate_scale: float = 0.04
    bare_min_brightness: float = 0.35  # single-date mode: bare soil is at least this bright
    threshold: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not np.isfinite(value):
                raise ValueError(f"{f.name} must be finite, got {value!r}")
        if self.smooth_px < 1 or self.texture_px < 1 or self.bin_px < 1:
            raise ValueError("bin_px, smooth_px and texture_px must be at least 1")
        if self.score_scale <= 0 or self.veg_gate_scale <= 0:
            raise ValueError("score_scale and veg_gate_scale must be positive")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> SpectralConfig:
        """Build from a dict (e.g. parsed YAML); unknown keys are an error that names them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown baseline settings {unknown!r}; known: {sorted(known)!r}")
        return replace(cls(), **{k: type(getattr(cls(), k))(v) for k, v in values.items()})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _linear_index(n_out: int, n_in: int, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = np.clip((np.arange(n_out) + 0.5) / f - 0.5, 0, n_in - 1)
    i0 = np.floor(pos).astype(np.intp)
    return i0, np.minimum(i0 + 1, n_in - 1), (pos - i0).astype(np.float32)


def _box_sum_axis(a: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Mean over a ``k``-wide window along ``axis``, edges repeated: ``ndimage.uniform_filter1d(mode="nearest")``.

    Summed in float64 (exact for float32 inputs), divided and rounded to float32 once, as scipy does,
    so the result is the same to the bit; shifted whole-array slices instead of scipy's line-by-line loop.
    """
    n, left = a.shape[axis], k // 2

    def part(lo: int, hi: int) -> tuple[slice, ...]:
        return (slice(None),) * axis + (slice(lo, hi),)

    s = np.empty(a.shape, dtype=np.float64)
    for j in range(k):
        d = j - left
        lo, hi = max(0, -d), min(n, n - d)
        if j == 0:
            s[part(lo, hi)] = a[part(lo + d, hi + d)]
            s[part(0, lo)] = a[part(0, 1)]
            s[part(hi, n)] = a[part(n - 1, n)]
        else:
            np.add(s[part(lo, hi)], a[part(lo + d, hi + d)], out=s[part(lo, hi)])
            if lo:
                s[part(0, lo)] += a[part(0, 1)]
            if hi < n:
                s[part(hi, n)] += a[part(n - 1, n)]
    out = np.empty(a.shape, dtype=np.float32)
    np.divide(s, k, out=out)
    return out


def _box_mean(img: np.ndarray, k: int) -> np.ndarray:
    """``ndimage.uniform_filter(img, size=(1, …, k, k), mode="nearest")`` over the last two axes, float32."""
    if k == 1:
        return img.astype(np.float32)  # a copy, as scipy returns
    nd = img.ndim
    return _box_sum_axis(_box_sum_axis(img, k, nd - 2), k, nd - 1)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)


class SpectralBaseline:
    """The spectral rule as a :class:`models.base.ChangeModel` (no training, numpy only)."""

    def __init__(self, *, config: SpectralConfig | None = None) -> None:
        self.config = config or SpectralConfig()
        margin = self.config.bin_px * (max(self.config.smooth_px, self.config.texture_px) + 2)
        self.info = ModelInfo(
            name="baseline",
            version="1",
            required_bands=RGB,
            optional_bands=("nir",),
            threshold=self.config.threshold,
            margin_px=margin,
            tile_size=1024,
            batch_size=1,
            single_date=True,
            resolution_m=(0.1, 30.0),
            extra={"config": self.config.as_dict()},
        )

    def __repr__(self) -> str:
        return f"SpectralBaseline(config={self.config!r})"

    def predict(self, x: np.ndarray, bands: Sequence[str]) -> np.ndarray:
        if x.ndim != 5 or x.shape[1] not in (1, 2):
            raise ValueError(f"x must be (batch, 1|2, bands, h, w), got shape {x.shape!r}")
        bands = list(bands)
        if bands[:3] != list(RGB) or len(bands) != x.shape[2]:
            raise BandsError(f"bands must start with red, green, blue and match x; got {bands!r}")
        nir = bands.index("nir") if "nir" in bands else None
        out = np.empty((x.shape[0], x.shape[3], x.shape[4]), dtype=np.float32)
        h, w = x.shape[3], x.shape[4]
        for i in range(x.shape[0]):  # batch is small; each item is a whole window
            if x.shape[1] == 2:
                small = self._change(self._bin(x[i, 0]), self._bin(x[i, 1]), nir)
            else:
                small = self._bare(self._bin(x[i, 0]), nir)
            # the binned rule blurs boundaries outward; the full-resolution vegetation gate puts them
            # back on the edge of the bare ground
            np.multiply(self._upsample(small, h, w), self._veg_gate_full(x[i, -1], nir), out=out[i])
        return out

    def _bin(self, img: np.ndarray) -> np.ndarray:
        f = self.config.bin_px
        if f == 1:
            return img.astype(np.float32, copy=False)
        c, h, w = img.shape
        hb, wb = -(-h // f), -(-w // f)
        if (hb * f, wb * f) != (h, w):
            img = np.pad(img, ((0, 0), (0, hb * f - h), (0, wb * f - w)), mode="edge")
        # a sum of strided views is several times faster than reshape(...).mean(axis=(2, 4));
        # summed in the same order as ever (the values must not change: other models are trained on them)
        total = np.add(img[:, 0::f, 0::f], img[:, 0::f, 1::f], dtype=np.float32)
        for i in range(f):
            for j in range(f):
                if i or j > 1:
                    total += img[:, i::f, j::f]
        total /= np.float32(f * f)
        return total

    def _upsample(self, small: np.ndarray, h: int, w: int) -> np.ndarray:
        """Bilinear interpolation of block means back to pixel centres (separable, edge-clamped)."""
        f = self.config.bin_px
        if f == 1:
            return small
        r0, r1, rw = _linear_index(h, small.shape[0], f)
        c0, c1, cw = _linear_index(w, small.shape[1], f)
        rows = small[r0] * (1 - rw)[:, None] + small[r1] * rw[:, None]
        # in place: the same arithmetic as ``rows[:, c0] * (1 - cw) + rows[:, c1] * cw``, fewer full-size copies
        out = rows[:, c0]
        out *= 1 - cw
        right = rows[:, c1]
        right *= cw
        out += right
        return np.clip(out, 0.0, 1.0, out=out)

    # -- pieces -----------------------------------------------------------------------------
    def _smooth(self, img: np.ndarray) -> np.ndarray:
        return _box_mean(img.astype(np.float32, copy=False), self.config.smooth_px)

    def _veg(self, img: np.ndarray, nir: int | None) -> np.ndarray:
        r, g, b = img[0], img[1], img[2]
        if nir is not None:
            return (img[nir] - r) / (img[nir] + r + _EPS)
        return (2 * g - r - b) / (r + g + b + _EPS)

    def _veg_gate(self, veg_after: np.ndarray, nir: int | None) -> np.ndarray:
        limit = self.config.veg_max_nir if nir is not None else self.config.veg_max_rgb
        return _sigmoid((limit - veg_after) / self.config.veg_gate_scale)

    def _veg_gate_full(self, img: np.ndarray, nir: int | None) -> np.ndarray:
        """``_veg_gate(_veg(img, nir), nir)`` for a full-resolution window, computed in place.

        The same float32 operations in the same order (so the same values), with two full-size
        arrays instead of about ten.
        """
        r, g, b = img[0], img[1], img[2]
        if nir is not None:
            v = np.subtract(img[nir], r)
            den = np.add(img[nir], r)
            limit = self.config.veg_max_nir
        else:
            v = np.multiply(2, g, dtype=np.float32)
            v -= r
            v -= b
            den = np.add(r, g)
            den += b
            limit = self.config.veg_max_rgb
        den += _EPS
        v /= den
        # _sigmoid((limit - v) / scale) = 0.5 * (1 + tanh(0.5 * z))
        np.subtract(limit, v, out=v)
        v /= self.config.veg_gate_scale
        v *= 0.5
        np.tanh(v, out=v)
        v += 1.0
        v *= 0.5
        return v

    def _texture(self, brightness: np.ndarray) -> np.ndarray:
        k = self.config.texture_px
        mean = _box_mean(brightness, k)
        sq = _box_mean(brightness * brightness, k)
        return np.sqrt(np.maximum(sq - mean * mean, 0.0))

    def _change(self, before: np.ndarray, after: np.ndarray, nir: int | None) -> np.ndarray:
        c = self.config
        b_s, a_s = self._smooth(before), self._smooth(after)
        veg_b, veg_a = self._veg(b_s, nir), self._veg(a_s, nir)
        bright_b, bright_a = b_s[:3].mean(axis=0), a_s[:3].mean(axis=0)
        change = np.sqrt(((a_s - b_s) ** 2).mean(axis=0))
        texture_rise = self._texture(bright_a) - self._texture(bright_b)
        score = (
            c.w_veg_drop * np.clip(veg_b - veg_a, 0.0, None)
            + c.w_bright_rise * np.clip(bright_a - bright_b, 0.0, None)
            + c.w_change * change
            + c.w_texture_rise * np.clip(texture_rise, 0.0, None)
        )
        prob = _sigmoid((score - c.score_offset) / c.score_scale) * self._veg_gate(veg_a, nir)
        return prob.astype(np.float32)

    def _bare(self, after: np.ndarray, nir: int | None) -> np.ndarray:
        c = self.config
        a_s = self._smooth(after)
        brightness = a_s[:3].mean(axis=0)
        # soil reflects more red than blue; shadows, water and most roofs do not
        redness = (a_s[0] - a_s[2]) / (a_s[0] + a_s[2] + _EPS)
        bright = _sigmoid((brightness - c.bare_min_brightness) / c.score_scale)
        soil = _sigmoid(redness / 0.05)
        return (bright * soil * self._veg_gate(self._veg(a_s, nir), nir)).astype(np.float32)
