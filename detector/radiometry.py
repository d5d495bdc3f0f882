"""Putting both dates on one radiometric scale, so that a brighter after-image is not a disturbance.

:func:`fit_normaliser` learns, from a sample of the overlap:
- a per-band *linear* mapping of the after image onto the before image, fitted on pseudo-invariant
  pixels: start from matching medians and inter-quartile ranges, then twice keep the 60 % of
  pixels that the mapping explains best and match their mean and standard deviation (reduced major
  axis). This removes differences between sensors, sun angles and overall seasonal brightness, yet
  keeps a local change: a full histogram matching would squeeze a new bright site (a few per cent
  of the pixels, in the histogram's tail) into the before image's tail and erase it;
- one common gain for all bands: the 99th percentile of the brightest visible band of the *before*
  image maps to 0.8 (about where it lies in 8-bit imagery divided by 255) and zero stays zero, so
  band ratios (colour, NDVI, excess green) survive.
:meth:`Normaliser.apply` then maps any window, in bounded memory. The same functions serve the
detector, the training data and the evaluation, so a model always sees one scale.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

__all__ = ["Normaliser", "fit_normaliser", "normalise_pair"]

_TOP = 0.99
_TOP_TO = 0.8  # p99 maps here, leaving headroom for after-pixels brighter than anything before (new soil)
_MAX_FIT_PIXELS = 200_000
_GAIN_RANGE = (1 / 3, 3.0)  # beyond this the "same place" assumption is wrong, not the sensor


@dataclass(frozen=True)
class Normaliser:
    """``scale``: common divisor (before-image units → [0, 1]); ``gain``/``offset`` ``(bands,)`` map after → before."""

    scale_to_one: float
    gain: np.ndarray
    offset: np.ndarray

    def __repr__(self) -> str:
        return (
            f"Normaliser(scale={self.scale_to_one:.4g}, gain={self.gain.round(3).tolist()}, "
            f"offset={self.offset.round(2).tolist()})"
        )

    def scale(self, img: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Before-image units → [0, 1] float32; ``img`` is ``(bands, h, w)``, any numeric dtype.

        ``out``: a float32 array (or view) of ``img``'s shape to write into instead of a new one.
        """
        out = _as_float32(img, out)
        out *= np.float32(1.0 / self.scale_to_one)
        return np.clip(out, 0.0, 1.0, out=out)

    def match(self, img: np.ndarray) -> np.ndarray:
        """After-image units → before-image units; ``img`` is ``(bands, h, w)``."""
        return img.astype(np.float32) * self.gain[:, None, None] + self.offset[:, None, None]

    def match_and_scale(self, img: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``scale(match(img))`` with one float copy instead of three (hundreds of megapixels go through here).

        ``out``: as for :meth:`scale`.
        """
        inv = np.float32(1.0 / self.scale_to_one)
        out = _as_float32(img, out)
        out *= (self.gain * inv).astype(np.float32)[:, None, None]
        out += (self.offset * inv).astype(np.float32)[:, None, None]
        return np.clip(out, 0.0, 1.0, out=out)

    def apply(self, before: np.ndarray | None, after: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """Both dates of one window in [0, 1] on the before image's scale (any numeric dtype in)."""
        return (None if before is None else self.scale(before)), self.match_and_scale(after)


def _as_float32(img: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``img`` as float32: a fresh array, or copied into ``out`` (converting on the way, no temporary)."""
    if out is None:
        return img.astype(np.float32)  # always a fresh array: safe to work in place
    np.copyto(out, img, casting="unsafe")  # the same values as astype(np.float32)
    return out


def _refine(a: np.ndarray, b: np.ndarray, gain: float, offset: float) -> tuple[float, float, float]:
    """Refit on the 60 % of pixels the current line explains best; returns gain, offset, fit error."""
    for _ in range(3):
        resid = np.abs(gain * a + offset - b)
        keep = resid <= np.quantile(resid, 0.6)
        sa, sb = a[keep].std(), b[keep].std()
        if keep.sum() < 50 or sa < 1e-9:
            break
        gain = float(np.clip(sb / sa, _GAIN_RANGE[0], _GAIN_RANGE[1]))
        offset = float(b[keep].mean() - gain * a[keep].mean())
    return gain, offset, float(np.quantile(np.abs(gain * a + offset - b), 0.6))


def _fit_band(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Gain and offset with ``b ≈ gain * a + offset``, ignoring the pixels that changed.

    Two starts — matching quartiles, and the identity — each refined on pseudo-invariant pixels;
    the one whose line explains the unchanged 60 % best wins. The quartile start fails when a third
    of the scene changed (its quartiles move), the identity start when the sensors differ a lot.
    """
    qa, qb = np.quantile(a, [0.25, 0.5, 0.75]), np.quantile(b, [0.25, 0.5, 0.75])
    gain0 = (qb[2] - qb[0]) / (qa[2] - qa[0]) if qa[2] - qa[0] > 1e-9 else 1.0
    gain0 = float(np.clip(gain0, _GAIN_RANGE[0], _GAIN_RANGE[1]))
    starts = [(gain0, float(qb[1] - gain0 * qa[1])), (1.0, float(np.median(b - a)))]
    gain, offset, _ = min((_refine(a, b, g, o) for g, o in starts), key=lambda r: r[2])
    return gain, offset


def _quantiles(img: np.ndarray, valid: np.ndarray, q: np.ndarray) -> np.ndarray:
    flat = img.reshape(img.shape[0], -1)[:, valid.reshape(-1)]
    return np.quantile(flat.astype(np.float64), q, axis=1).T


def fit_normaliser(
    before: np.ndarray | None,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    match_histograms: bool = True,
    workers: int = 1,
) -> Normaliser:
    """Learn the scale from samples ``(bands, h, w)`` of both dates; ``valid`` ``(h, w)`` bool marks usable pixels.

    With ``before=None`` (single-date mode) the after image defines the scale itself; with
    ``match_histograms=False`` the after image is used as it is (same sensor, same calibration).
    Raises ValueError when fewer than 100 valid pixels are given. ``workers`` threads fit the bands
    (numpy's sorting releases the GIL); the result does not depend on it.
    """
    n_valid = int(valid.sum())
    if n_valid < 100:
        raise ValueError(f"only {n_valid} valid pixels to fit the radiometric scale; need at least 100")
    bands = after.shape[0]
    gain = np.ones(bands, dtype=np.float32)
    offset = np.zeros(bands, dtype=np.float32)
    ref = after if before is None else before
    if before is not None and match_histograms:
        idx = np.flatnonzero(valid.reshape(-1))
        if idx.size > _MAX_FIT_PIXELS:  # a regular subsample is plenty for two numbers per band
            idx = idx[:: idx.size // _MAX_FIT_PIXELS + 1]

        def fit(b: int) -> tuple[float, float]:
            return _fit_band(
                after[b].reshape(-1)[idx].astype(np.float64), before[b].reshape(-1)[idx].astype(np.float64)
            )

        if workers > 1:
            with ThreadPoolExecutor(max_workers=min(workers, bands), thread_name_prefix="soilwatch-fit") as pool:
                fitted = list(pool.map(fit, range(bands)))
        else:
            fitted = [fit(b) for b in range(bands)]
        for b, (g, o) in enumerate(fitted):
            gain[b], offset[b] = g, o
    top = float(_quantiles(ref[:3], valid, np.array([_TOP])).max()) / _TOP_TO
    return Normaliser(scale_to_one=top if top > 1e-6 else 1.0, gain=gain, offset=offset)


def normalise_pair(
    before: np.ndarray, after: np.ndarray, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Whole-array convenience for small pairs (training/evaluation): fit on the pair, then apply."""
    if valid is None:
        valid = np.ones(before.shape[1:], dtype=bool)
    norm = fit_normaliser(before, after, valid)
    return norm.scale(before), norm.match_and_scale(after)
