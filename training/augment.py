"""Augmentations for bi-temporal change samples, on numpy arrays (no torch).

A sample is a dict (:mod:`training.data` form): ``image`` float32 ``(2, c, h, w)`` in [0, 1] (before,
after), ``mask`` uint8 ``(1, h, w)`` (1 = change), ``valid`` bool ``(1, h, w)`` (pixels that count in
the loss). Every function takes a ``numpy.random.Generator`` and returns a new sample; geometric
transforms apply to both dates and the masks alike, radiometric ones to each date separately.

Why these, for this task:
- scaled crops: the real sets run from 0.5 m to 10 m per pixel; zooming by 0.5-2x spreads every set
  over neighbouring resolutions so no set's pixel size is memorised;
- flips / 90-degree turns: imagery has no preferred orientation (sun shadows aside);
- colour jitter *per date*: what is left of the sensor, season and haze differences after the
  detector's radiometric normalisation must not read as change;
- a one-pixel shift of the after image: sub-pixel misregistration of real pairs;
- another sensor for one date (:func:`degrade_date`, off unless configured): blur or a coarser pixel
  resampled back, and a smooth local warp of up to a few pixels (relief displacement of roofs, trees and
  embankments differs between two off-nadir views) — an old village rendered another way is not a site;
- pasting real changed regions from one pair into another (:func:`paste_change`): more positives, in
  new surroundings, so the network learns what changed rather than where changes tend to lie;
- date swap (:func:`swap_dates`): only where labels are *directional* ("new disturbance", as in the
  synthetic scenes), with the label cleared, so removal and revegetation are not construction. The
  real sets' masks are symmetric "change" (LEVIR-CD includes demolished buildings), so swapping them
  with the label cleared would be wrong, and with the label kept would teach that revegetation is a
  disturbance; they are not swapped (``swap_real`` defaults to 0).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "Sample",
    "crop_scaled",
    "degrade_date",
    "flip_rot",
    "jitter_dates",
    "paste_change",
    "resize",
    "shift_after",
    "swap_dates",
]

Sample = dict[str, np.ndarray]


def resize(sample: Sample, size: int) -> Sample:
    """Resize to ``size`` x ``size``: images by area averaging (down) or bilinear (up), masks by nearest."""
    import torch
    import torch.nn.functional as F

    img = sample["image"]
    h, w = img.shape[-2:]
    if (h, w) == (size, size):
        return sample
    t = torch.from_numpy(np.ascontiguousarray(img.reshape(-1, h, w)))[None]
    mode = "area" if h >= size and w >= size else "bilinear"
    kw = {} if mode == "area" else {"align_corners": False}
    out = F.interpolate(t, size=(size, size), mode=mode, **kw)[0].numpy()
    rows = (np.arange(size) * h / size).astype(np.intp)
    cols = (np.arange(size) * w / size).astype(np.intp)
    return {
        "image": out.reshape(*img.shape[:2], size, size).astype(np.float32),
        "mask": sample["mask"][:, rows][:, :, cols],
        "valid": sample["valid"][:, rows][:, :, cols],
    }


def crop_scaled(
    sample: Sample,
    rng: np.random.Generator,
    *,
    size: int,
    scale: tuple[float, float] = (1.0, 1.0),
    focus_change: float = 0.0,
) -> Sample:
    """A random square crop of ``size * s`` pixels (``s`` log-uniform in ``scale``), resized to ``size``.

    With probability ``focus_change`` the crop is centred near a random changed pixel (if any).
    Images smaller than the crop are used whole (and resized).
    """
    h, w = sample["image"].shape[-2:]
    s = float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]))))
    side = int(round(size * s))
    ch, cw = min(side, h), min(side, w)
    changed = np.flatnonzero(sample["mask"][0].reshape(-1)) if rng.random() < focus_change else np.empty(0)
    if changed.size:
        centre = int(changed[rng.integers(changed.size)])
        cy = centre // w + int(rng.integers(-ch // 4, ch // 4 + 1))
        cx = centre % w + int(rng.integers(-cw // 4, cw // 4 + 1))
        r0 = int(np.clip(cy - ch // 2, 0, h - ch))
        c0 = int(np.clip(cx - cw // 2, 0, w - cw))
    else:
        r0, c0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    rs, cs = slice(r0, r0 + ch), slice(c0, c0 + cw)
    out = {"image": sample["image"][..., rs, cs], "mask": sample["mask"][:, rs, cs],
           "valid": sample["valid"][:, rs, cs]}
    return resize(out, size)


def flip_rot(sample: Sample, rng: np.random.Generator) -> Sample:
    """One of the 8 flips/90-degree rotations, the same for both dates and the masks."""
    k, flip = int(rng.integers(4)), bool(rng.integers(2))

    def t(a: np.ndarray) -> np.ndarray:
        a = np.rot90(a, k, axes=(-2, -1))
        return np.ascontiguousarray(a[..., ::-1] if flip else a)

    return {key: t(v) for key, v in sample.items()}


def jitter_dates(sample: Sample, rng: np.random.Generator, *, strength: float = 0.05) -> Sample:
    """Per date: a gain (1 +- 2*strength overall, +- strength per band), an offset (+- strength/2) and
    a gamma (1 +- strength*2); clipped to [0, 1]. Zero pixels (outside the valid area) stay 0."""
    img = sample["image"].copy()
    c = img.shape[1]
    for d in range(img.shape[0]):
        gain = (1 + rng.uniform(-2, 2) * strength) * (1 + rng.uniform(-strength, strength, c))
        offset = rng.uniform(-strength / 2, strength / 2, c)
        gamma = 1 + rng.uniform(-2, 2) * strength
        x = np.clip(img[d], 0, 1) ** gamma * gain[:, None, None] + offset[:, None, None]
        img[d] = np.where(img[d] > 0, np.clip(x, 0, 1), 0)
    return {**sample, "image": img.astype(np.float32)}


def shift_after(sample: Sample, rng: np.random.Generator, *, max_px: int = 1) -> Sample:
    """Shift the after image by up to ``max_px`` whole pixels (edge pixels repeated): misregistration."""
    dy, dx = (int(v) for v in rng.integers(-max_px, max_px + 1, 2))
    if dy == 0 and dx == 0:
        return sample
    img = sample["image"].copy()
    after = np.pad(img[1], ((0, 0), (max_px, max_px), (max_px, max_px)), mode="edge")
    h, w = img.shape[-2:]
    img[1] = after[:, max_px + dy:max_px + dy + h, max_px + dx:max_px + dx + w]
    return {**sample, "image": img}


def degrade_date(sample: Sample, rng: np.random.Generator, *, warp_px: float = 2.0) -> Sample:
    """One date, drawn at random, as if seen by another sensor: blurred (sigma 0.5-1.5 px) or sampled at a
    1.5-3x coarser pixel and brought back (bilinear), then warped by a smooth random displacement field of
    up to ``warp_px`` pixels (0 = none). The label and the other date are unchanged."""
    from scipy.ndimage import gaussian_filter, map_coordinates, zoom

    img = sample["image"].copy()
    d = int(rng.integers(2))
    x = img[d]
    c, h, w = x.shape
    if rng.random() < 0.5:
        x = gaussian_filter(x, sigma=(0, *(rng.uniform(0.5, 1.5),) * 2), mode="nearest")
    else:
        f = float(rng.uniform(1.5, 3.0))
        small = zoom(x, (1, 1 / f, 1 / f), order=1, mode="nearest", grid_mode=True)
        x = zoom(small, (1, h / small.shape[1], w / small.shape[2]), order=1, mode="nearest", grid_mode=True)
    if warp_px > 0:
        coarse = rng.uniform(-warp_px, warp_px, (2, 4, 4))  # a displacement per cell of a 4x4 grid, smoothed up
        dy, dx = (zoom(g, (h / 4, w / 4), order=3, mode="nearest", grid_mode=True)[:h, :w] for g in coarse)
        rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
        x = np.stack([map_coordinates(band, [rows + dy, cols + dx], order=1, mode="nearest") for band in x])
    img[d] = np.where(sample["image"][d] > 0, np.clip(x, 0, 1), 0)
    return {**sample, "image": img.astype(np.float32)}


def paste_change(target: Sample, source: Sample) -> Sample:
    """Paste the changed region of ``source`` (same size) into ``target``.

    Where the source mask is 1, the target's *after* image takes the source's after pixels and the
    target's *before* image keeps its own: a real changed appearance over a new background. The
    target's mask becomes the union; those pixels count only where the source's are valid.
    """
    m = source["mask"][0].astype(bool) & source["valid"][0]
    if not m.any():
        return target
    img = target["image"].copy()
    img[1][:, m] = source["image"][1][:, m]
    mask = target["mask"].copy()
    mask[0][m] = 1
    valid = target["valid"].copy()
    valid[0][m] = True
    return {"image": img, "mask": mask, "valid": valid}


def swap_dates(sample: Sample, *, clear_mask: bool) -> Sample:
    """Swap before and after. With ``clear_mask`` the label becomes 0 everywhere (directional labels:
    a disturbance run backwards is a revegetation, not a disturbance); without it the label is kept
    (symmetric "change" labels)."""
    out = {**sample, "image": np.ascontiguousarray(sample["image"][::-1])}
    if clear_mask:
        out["mask"] = np.zeros_like(sample["mask"])
    return out
