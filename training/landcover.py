"""Change pairs made from real single-date land-cover tiles: real disturbed ground pasted into real scenes.

The change sets in ``../shared/data`` are few, and none of them labels "new bare soil" as such. The
``landcover_*`` sets (LoveDA, 0.3 m, rural China; DeepGlobe, 0.5 m) are single-date images whose masks
mark bare land (graded ground, construction sites, bare plots), buildings, roads, fields and water.
:func:`bare_change_sample` turns them into bi-temporal training pairs, in one of two directions:

- **forward**: the before image is a real scene; the after image is the same scene with the disturbed
  ground of another tile (its real texture and its real outline) blended in. The label is the pasted
  ground, except where the scene was disturbed already.
- **reverse**: the after image is a real scene *with* disturbed ground in its real surroundings (a cleared
  strip along a new road, a site next to a factory); the before image is the same scene with that ground
  covered by the texture of an undisturbed crop from another tile. The label is the ground that was covered.

"Disturbed" is the bare class, and in a share of the pairs also buildings, roads and built-up land. The
nuisances labelled no change (fields that turn soil-coloured, pasted non-disturbed textures, blur, water
colour) are described at :func:`bare_change_sample`. Both dates then get the same per-date colour jitter,
misregistration and flips as every other sample (:mod:`training.augment`). The paste is feathered over about
a pixel so that a sharp seam alone does not mean "change".

Tiles are scaled once, with the detector's radiometry (:func:`training.data.normalise_pair` of the tile
with itself), and kept as float16. The class table of each set (``classes.csv``: ``code`` or ``code_rgb``,
``name``, ``is_bare`` = YES / no / ignore / unknown) says which pixels are bare and which are ignored; the
other classes are recognised by words of their names (:data:`SEASONAL_CLASS_WORDS`,
:data:`BUILT_CLASS_WORDS`, :data:`WATER_CLASS_WORDS`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from training import augment
from training.errors import DataReadError

__all__ = ["LandcoverTile", "bare_change_sample", "ground_sample", "load_landcover"]

#: Ground resolution (m/pixel) of the land-cover sets, matched on a word of the set's folder name.
LANDCOVER_RESOLUTION_M: dict[str, float] = {"loveda": 0.3, "deepglobe": 0.5}
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: Classes whose colour follows the season (harvest, ploughing, drying grass), matched on a word of the class name.
SEASONAL_CLASS_WORDS = ("agriculture", "rangeland", "cropland", "farmland", "grass")
#: Classes that construction leaves behind (a new building, road or built-up block on former fields is a
#: production-construction disturbance too), matched on a word of the class name.
BUILT_CLASS_WORDS = ("building", "road", "urban", "built")
#: Water, whose colour changes with silt, algae and light.
WATER_CLASS_WORDS = ("water",)


@dataclass(frozen=True)
class LandcoverTile:
    """One land-cover image: ``image`` float16 ``(3, h, w)`` in [0, 1]; ``bare``, ``seasonal`` (fields and
    grass, whose colour follows the season), ``built`` (buildings, roads, built-up land), ``water`` and
    ``valid`` bool ``(h, w)``."""

    name: str
    image: np.ndarray
    bare: np.ndarray
    valid: np.ndarray
    resolution_m: float
    seasonal: np.ndarray | None = None
    built: np.ndarray | None = None
    water: np.ndarray | None = None
    unknown: np.ndarray | None = None

    @cached_property
    def bare_index(self) -> np.ndarray:
        """Flat indices of the bare pixels (computed once: crops are centred on them for every sample)."""
        return np.flatnonzero(self.bare.reshape(-1))

    @cached_property
    def disturbed_index(self) -> np.ndarray:
        """Flat indices of the bare and built pixels."""
        both = self.bare | self.built if self.built is not None else self.bare
        return np.flatnonzero(both.reshape(-1))

    def __repr__(self) -> str:
        h, w = self.bare.shape
        return f"LandcoverTile({self.name!r}, {h}x{w}, {self.resolution_m} m, bare {self.bare.mean():.1%})"


def _class_codes(set_dir: Path) -> tuple[bool, set, set, set, set, set, set]:
    """(codes are RGB triples, bare, ignored, seasonal, built, water and unknown codes) from ``set_dir/classes.csv``.
    ``unknown`` (``is_bare = unknown``): a class that may hide unlabelled bare ground, such as LoveDA's
    background; the change pairs use it as they use any other class, the bare-soil head (training.bare) ignores it."""
    path = set_dir / "classes.csv"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise DataReadError(f"land-cover set {str(set_dir)!r} has no readable classes.csv: {exc}") from exc
    if not rows or "is_bare" not in rows[0] or not ({"code", "code_rgb"} & set(rows[0])):
        raise DataReadError(f"{str(path)!r} needs the columns code (or code_rgb) and is_bare")
    rgb = "code_rgb" in rows[0]
    bare, ignore, seasonal, built, water, unknown = set(), set(), set(), set(), set(), set()
    for row in rows:
        raw = row["code_rgb" if rgb else "code"]
        try:
            code = tuple(int(v) for v in raw.split(",")) if rgb else int(raw)
        except ValueError as exc:
            raise DataReadError(f"{str(path)!r}: class code {raw!r} is not a number") from exc
        kind = row["is_bare"].strip().lower()
        if kind == "unknown":
            unknown.add(code)  # and, as before, into the class its name says (the change pairs use it so)
        if kind == "yes":
            bare.add(code)
        elif kind == "ignore":
            ignore.add(code)
        elif any(w in (row.get("name") or "").lower() for w in SEASONAL_CLASS_WORDS):
            seasonal.add(code)
        elif any(w in (row.get("name") or "").lower() for w in BUILT_CLASS_WORDS):
            built.add(code)
        elif any(w in (row.get("name") or "").lower() for w in WATER_CLASS_WORDS):
            water.add(code)
    if not bare:
        raise DataReadError(f"{str(path)!r} marks no class as bare (is_bare = YES)")
    return rgb, bare, ignore, seasonal, built, water, unknown


def _codes_in(mask: np.ndarray, codes: set, rgb: bool) -> np.ndarray:
    out = np.zeros(mask.shape[:2], dtype=bool)
    for code in codes:
        out |= (mask == np.asarray(code, dtype=mask.dtype)).all(axis=-1) if rgb else mask == code
    return out


def _resolution(set_name: str) -> float:
    for key, res in LANDCOVER_RESOLUTION_M.items():
        if key in set_name.lower():
            return res
    raise DataReadError(
        f"no ground resolution is known for land-cover set {set_name!r}; add it to LANDCOVER_RESOLUTION_M"
    )


def load_landcover(root: str | Path, sets: tuple[str, ...] | list[str]) -> list[LandcoverTile]:
    """Read every image of the named ``landcover_*`` sets under ``root`` (``<set>/image``, ``<set>/mask``)."""
    from PIL import Image

    from training.data import normalise_pair

    tiles = []
    for name in sets:
        set_dir = Path(root) / name
        if not (set_dir / "image").is_dir() or not (set_dir / "mask").is_dir():
            raise DataReadError(f"land-cover set {str(set_dir)!r} needs image/ and mask/ folders")
        rgb, bare_codes, ignore_codes, seasonal_codes, built_codes, water_codes, unknown_codes = _class_codes(set_dir)
        res = _resolution(name)
        for img_path in sorted(p for p in (set_dir / "image").iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES):
            mask_path = set_dir / "mask" / f"{img_path.stem}.png"
            try:
                with Image.open(img_path) as im:
                    img = np.moveaxis(np.asarray(im.convert("RGB")), -1, 0).astype(np.float32)
                with Image.open(mask_path) as im:
                    mask = np.asarray(im.convert("RGB") if rgb else im)
            except OSError as exc:
                raise DataReadError(f"cannot read land-cover tile {str(img_path)!r} or its mask: {exc}") from exc
            if mask.shape[:2] != img.shape[1:]:
                raise DataReadError(f"{str(mask_path)!r} is {mask.shape[:2]}, its image {img.shape[1:]}")
            valid = ~_codes_in(mask, ignore_codes, rgb) & (img.max(axis=0) > 0)
            scaled, _ = normalise_pair(img, img, valid)
            tiles.append(LandcoverTile(
                name=f"{name}/{img_path.stem}", image=scaled.astype(np.float16),
                bare=_codes_in(mask, bare_codes, rgb) & valid, valid=valid, resolution_m=res,
                seasonal=_codes_in(mask, seasonal_codes, rgb) & valid, built=_codes_in(mask, built_codes, rgb) & valid,
                water=_codes_in(mask, water_codes, rgb) & valid, unknown=_codes_in(mask, unknown_codes, rgb) & valid,
            ))
    return tiles


def _crop(tile: LandcoverTile, rng: np.random.Generator, size: int, resolution_m: float,
          near: np.ndarray | None = None) -> augment.Sample:
    """A ``size``-pixel square of ``tile`` at about ``resolution_m`` (coarser if the tile is too small), as a
    sample whose ``mask`` holds the bare, seasonal, built, water and unknown classes (channels 0-4). ``near``: flat
    indices to centre it on (one drawn at random)."""
    h, w = tile.bare.shape
    side = min(int(round(size * resolution_m / tile.resolution_m)), h, w)
    if near is not None and near.size:
        centre = int(near[rng.integers(near.size)])
        cy = centre // w + int(rng.integers(-side // 4, side // 4 + 1))
        cx = centre % w + int(rng.integers(-side // 4, side // 4 + 1))
        r0, c0 = int(np.clip(cy - side // 2, 0, h - side)), int(np.clip(cx - side // 2, 0, w - side))
    else:
        r0, c0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    rs, cs = slice(r0, r0 + side), slice(c0, c0 + side)
    none = np.zeros((side, side), dtype=bool)
    layers = (tile.bare, tile.seasonal, tile.built, tile.water, tile.unknown)
    classes = [m[rs, cs] if m is not None else none for m in layers]
    sample = {"image": tile.image[None, :, rs, cs].astype(np.float32), "mask": np.stack(classes).astype(np.uint8),
              "valid": tile.valid[None, rs, cs]}
    return augment.resize(sample, size)


def _feather(region: np.ndarray) -> np.ndarray:
    """Blend weights for ``region`` (bool ``(h, w)``): 1 inside, a 3x3 mean across its edge."""
    from scipy.ndimage import uniform_filter

    return uniform_filter(region.astype(np.float32), size=3, mode="nearest")


def _disturbed(crop: augment.Sample, with_built: bool) -> np.ndarray:
    """Bool ``(h, w)``: the crop's bare ground, and its buildings and roads when ``with_built``."""
    m = crop["mask"][0].astype(bool)
    return m | crop["mask"][2].astype(bool) if with_built else m


def _same_kind(a: augment.Sample, b: augment.Sample) -> np.ndarray:
    """Bool ``(h, w)``: bare in both crops, or built in both. Bare ground pasted onto bare ground is no new
    disturbance; a building on bare ground, or bare ground where a building stood, is one."""
    ma, mb = a["mask"].astype(bool), b["mask"].astype(bool)
    return (ma[0] & mb[0]) | (ma[2] & mb[2])


def _undisturbed_crop(tiles: list[LandcoverTile], rng: np.random.Generator, size: int, res: float,
                      with_built: bool) -> augment.Sample:
    """A crop with (almost) no disturbed ground, from a random tile; three tries, then the last one drawn."""
    crop = _crop(tiles[int(rng.integers(len(tiles)))], rng, size, res)
    for _ in range(3):
        if _disturbed(crop, with_built).mean() < 0.05:
            break
        crop = _crop(tiles[int(rng.integers(len(tiles)))], rng, size, res)
    return crop


def _season(img: np.ndarray, fields: np.ndarray, soil: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``img`` ``(3, h, w)`` with its ``fields`` turned the colour ``soil`` ``(3,)`` (harvest, ploughing, dry
    grass), keeping their texture: each pixel's brightness relative to the fields' mean scales the colour."""
    if fields.sum() < 16:
        return img
    lum = img.mean(axis=0)
    rel = lum / max(float(lum[fields].mean()), 1e-3)
    strength = float(rng.uniform(0.6, 1.0))
    browned = np.clip(rel[None] * soil[:, None, None], 0, 1)
    a = _feather(fields) * strength
    return img * (1 - a) + browned * a


def bare_change_sample(
    tiles: list[LandcoverTile],
    rng: np.random.Generator,
    *,
    size: int,
    resolution_m: tuple[float, float] = (0.5, 3.0),
    reverse: float = 0.5,
    nuisance: float = 0.5,
    season: float = 0.5,
    blur: float = 0.3,
    built: float = 0.5,
    water: float = 0.0,
    kind_rule: bool = False,
) -> augment.Sample:
    """One training pair (``image`` ``(2, 3, size, size)``, ``mask``, ``valid``) made from ``tiles``.

    The ground resolution is drawn log-uniformly from ``resolution_m``; with probability ``reverse`` the pair
    is made the reverse way (see the module docstring). Raises ValueError when no tile has bare ground.

    Outside the pasted ground the two dates would be the same pixels, which no real pair is; left so, the
    network learns that *any* difference is change. So, with probability ``nuisance``, one date also gets a
    *non-bare* texture (a field, trees, roofs) pasted in the outline of some other bare ground, labelled
    no change: a crop rotation or a new orchard must not read as disturbance, and an outline or a seam must
    not either. With probability ``season`` the fields and grass of one date take the colour of the pasted
    bare ground (harvest, ploughing, a dry season), keeping their own texture, labelled no change: in real
    pairs (DSIFN's Xi'an tiles) green spring fields become brown winter ones everywhere, and a model that
    calls "green became soil-coloured" a disturbance flags every field. With probability ``blur`` one date
    is blurred (sigma 0.5-1.2 px): another sensor, another focus.

    With probability ``built`` the disturbed ground is bare land *and* buildings, roads and built-up land
    (a town block or a factory on former fields is a construction disturbance too, and it is most of what
    DSIFN's Xi'an pairs label); otherwise bare land only. Where the pasted ground lands on ground that was
    disturbed already, the label is 0 — or, with ``kind_rule``, 0 only where it was of the *same kind* (bare on
    bare, built on built): a building rising on bare ground, or bare ground where a building stood, is change.

    With probability ``water`` the water of one date changes colour (silt, algae, light; gain 0.6-1.6 per band
    and a tint), labelled no change. Draws from ``rng`` depend only on what is switched on, so a recipe that
    leaves ``water`` at 0 draws exactly the samples it drew before the option existed.
    """
    from scipy.ndimage import binary_dilation, gaussian_filter

    with_bare = [t for t in tiles if t.bare_index.size]
    if not with_bare:
        raise ValueError("no land-cover tile has bare-class pixels; nothing to paste")
    res = float(np.exp(rng.uniform(np.log(resolution_m[0]), np.log(resolution_m[1]))))
    with_built = rng.random() < built

    def site_crop() -> augment.Sample:
        tile = with_bare[int(rng.integers(len(with_bare)))]
        return _crop(tile, rng, size, res, near=tile.disturbed_index if with_built else tile.bare_index)

    site = site_crop()
    ground = _disturbed(site, with_built) & site["valid"][0]
    alpha = _feather(ground)
    if rng.random() < reverse:
        filler = _undisturbed_crop(tiles, rng, size, res, with_built)
        before = site["image"][0] * (1 - alpha) + filler["image"][0] * alpha
        after = site["image"][0]
        label = ground & ~(_same_kind(site, filler) if kind_rule else _disturbed(filler, with_built))
        background = site
    else:
        scene = _crop(tiles[int(rng.integers(len(tiles)))], rng, size, res)
        before = scene["image"][0]
        after = before * (1 - alpha) + site["image"][0] * alpha
        label = ground & ~(_same_kind(site, scene) if kind_rule else _disturbed(scene, with_built))
        background = scene
    image = np.stack([before, after]).astype(np.float32)
    if rng.random() < season:
        fields = background["mask"][1].astype(bool) & ~binary_dilation(ground, iterations=2)
        soil_px = site["mask"][0].astype(bool) & site["valid"][0]
        soil = site["image"][0][:, soil_px].mean(axis=1) if soil_px.sum() >= 16 else np.array([0.45, 0.38, 0.3])
        d = int(rng.integers(2))
        image[d] = _season(image[d], fields, soil * rng.uniform(0.85, 1.15, 3), rng)
    if rng.random() < nuisance:
        outline = _disturbed(site_crop(), with_built) & ~binary_dilation(ground, iterations=2)
        texture = _undisturbed_crop(tiles, rng, size, res, True)
        a = _feather(outline & ~_disturbed(texture, True))
        d = int(rng.integers(2))
        image[d] = image[d] * (1 - a) + texture["image"][0] * a
    if water > 0 and rng.random() < water:
        wet = background["mask"][3].astype(bool) & ~binary_dilation(ground, iterations=2)
        if wet.any():
            d = int(rng.integers(2))
            gain = rng.uniform(0.6, 1.6) * rng.uniform(0.85, 1.15, 3)
            tint = rng.uniform(-0.05, 0.08, 3)
            a = _feather(wet)
            shifted = np.clip(image[d] * gain[:, None, None] + tint[:, None, None], 0, 1)
            image[d] = image[d] * (1 - a) + shifted * a
    if rng.random() < blur:
        d = int(rng.integers(2))
        sigma = float(rng.uniform(0.5, 1.2))
        image[d] = gaussian_filter(image[d], sigma=(0, sigma, sigma), mode="nearest")
    return {"image": image, "mask": label[None].astype(np.uint8), "valid": background["valid"].copy()}


def ground_sample(tiles: list[LandcoverTile], rng: np.random.Generator, *, size: int,
                  resolution_m: tuple[float, float] = (0.5, 3.0)) -> augment.Sample:
    """One single-date sample for the ground head: ``image`` ``(1, 3, size, size)``, ``mask`` ``(1, size, size)``
    = disturbed ground (the bare class, buildings, roads, built-up land), ``valid``. The ground resolution is
    drawn log-uniformly from ``resolution_m``; half the crops are centred on disturbed ground."""
    res = float(np.exp(rng.uniform(np.log(resolution_m[0]), np.log(resolution_m[1]))))
    tile = tiles[int(rng.integers(len(tiles)))]
    crop = _crop(tile, rng, size, res, near=tile.disturbed_index if rng.random() < 0.5 else None)
    return {"image": crop["image"], "mask": _disturbed(crop, True)[None].astype(np.uint8), "valid": crop["valid"]}
