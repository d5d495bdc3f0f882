"""Real labelled change sets: find, read and normalise before/after pairs with their change masks.

Layout of a data folder (the one under ``shared/data``)::

    <root>/<set>/A/<name>.<png|tif|tiff>       before image
    <root>/<set>/B/<name>.<png|tif|tiff>       after image, same grid as A
    <root>/<set>/label/<name>.<png|tif|tiff>   change mask, uint8, 0 = no change, 255 = change
    <root>/<set>/valid/<name>.png              optional: sparse labels; 0 = not labelled (ignored)

Folders without ``A``, ``B`` and ``label`` (``geotiff/``, ``landcover_*``) are not change sets and are
skipped with a note. Images come out as the models expect them (:mod:`models.base`): float32
``(bands, h, w)`` in [0, 1], bands named from :data:`models.base.BAND_NAMES` in that order, RGB first.
PNGs are red, green, blue; GeoTIFF bands are named from their band descriptions (``"B04 red ..."``),
so OSCD's B02, B03, B04, B08, B11, B12 become red, green, blue, nir, swir1, swir2.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detector.radiometry import fit_normaliser
from models.base import BAND_NAMES, RGB
from training.errors import DataReadError, DatasetLayoutError, DatasetNotFoundError

__all__ = [
    "DEFAULT_RESOLUTION_M",
    "FALLBACK_RESOLUTION_M",
    "IMAGE_SUFFIXES",
    "ChangePair",
    "ChangeSetDataset",
    "DataIndex",
    "PairFiles",
    "RawImage",
    "index_data",
    "iter_pairs",
    "normalise_pair",
    "read_image",
    "read_mask",
    "read_pair",
    "resolution_for_set",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".tif", ".tiff")

#: Ground resolution (m/pixel) of sets whose files carry none (PNG). Matched on a word of the set
#: folder name. Sources: shared/data/README.md (SZTAKI 1.5 m, LEVIR-CD 0.5 m, OSCD 10 m) and,
#: for DSIFN, which states no GSD, "roughly 1-2 m" from looking at the tiles: 2 m is used.
DEFAULT_RESOLUTION_M: dict[str, float] = {
    "sztaki": 1.5,
    "dsifn": 2.0,
    "levir": 0.5,
    "oscd": 10.0,
}
#: Used, with a warning, for a set that has no georeferencing and no entry in the table.
FALLBACK_RESOLUTION_M = 1.0

_PAIR_DIRS = ("A", "B", "label")
# Sentinel-2 band numbers and band words -> soilwatch band names
_S2_BANDS = {2: "blue", 3: "green", 4: "red", 8: "nir", 11: "swir1", 12: "swir2"}
_WORDS = {"red": "red", "green": "green", "blue": "blue", "nir": "nir", "swir1": "swir1", "swir2": "swir2"}
# metres per degree of latitude, and of longitude at the equator (WGS 84, rounded)
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON = 111_320.0


@dataclass(frozen=True)
class PairFiles:
    """Paths of one labelled pair; ``valid`` is None when the set has no mask for it."""

    set_name: str
    name: str
    before: Path
    after: Path
    label: Path
    valid: Path | None = None


@dataclass(frozen=True)
class DataIndex:
    """The change sets found under ``root``: ``sets`` maps a set name to its pairs (sorted by name);
    ``skipped`` maps each folder that is not a change set to the reason."""

    root: Path
    sets: dict[str, list[PairFiles]]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def n_pairs(self) -> int:
        return sum(len(p) for p in self.sets.values())

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}: {len(v)}" for k, v in self.sets.items())
        return f"DataIndex(root={str(self.root)!r}, sets={{{counts}}}, skipped={sorted(self.skipped)!r})"


@dataclass(frozen=True)
class RawImage:
    """One image as stored, with bands renamed and reordered to :data:`BAND_NAMES` order.

    ``data``: float32 ``(bands, h, w)`` in the file's units (e.g. 0-255, or reflectance x 10000);
    ``valid``: bool ``(h, w)``, False where the file marks no-data; ``resolution_m``: metres per
    pixel from the georeferencing, or None when the file has none.
    """

    data: np.ndarray
    bands: tuple[str, ...]
    valid: np.ndarray
    resolution_m: float | None


@dataclass(frozen=True, repr=False)
class ChangePair:
    """One labelled pair, ready for a model.

    ``before``/``after``: float32 ``(bands, h, w)`` in [0, 1] (see :func:`normalise_pair`), bands named
    by ``bands``; ``label``: bool ``(h, w)``, True = change; ``valid``: bool ``(h, w)``, True where the
    label counts (sparse labels, and no-data in either image, are False); ``resolution_m``: metres per
    pixel, from the GeoTIFF or :data:`DEFAULT_RESOLUTION_M`.
    """

    set_name: str
    name: str
    before: np.ndarray
    after: np.ndarray
    label: np.ndarray
    valid: np.ndarray
    bands: tuple[str, ...]
    resolution_m: float

    def __repr__(self) -> str:
        c, h, w = self.before.shape
        return (
            f"ChangePair({self.set_name}/{self.name}, bands={self.bands!r}, shape=({h}, {w}), "
            f"changed={float(self.label[self.valid].mean()) if self.valid.any() else 0.0:.3f}, "
            f"resolution_m={self.resolution_m:g})"
        )

    def as_sample(self) -> dict[str, np.ndarray]:
        """Training-sample form: ``image`` float32 ``(2, c, h, w)`` (before, after); ``mask`` uint8
        ``(1, h, w)`` with 1 = change; ``valid`` bool ``(1, h, w)`` (pixels to leave out of the loss)."""
        return {
            "image": np.stack([self.before, self.after]).astype(np.float32, copy=False),
            "mask": self.label[None].astype(np.uint8),
            "valid": self.valid[None].copy(),
        }


# -- finding pairs ------------------------------------------------------------------------------
def _stems(folder: Path, set_name: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES or p.name.startswith("."):
            continue
        if p.stem in out:
            raise DatasetLayoutError(
                f"set {set_name!r}: two files for {p.stem!r} in {folder.name}/ ({out[p.stem].name!r}, {p.name!r}); "
                "keep one"
            )
        out[p.stem] = p
    return out


def _index_set(set_dir: Path) -> list[PairFiles]:
    name = set_dir.name
    a, b, lab = (_stems(set_dir / d, name) for d in _PAIR_DIRS)
    valid_dir = set_dir / "valid"
    v = _stems(valid_dir, name) if valid_dir.is_dir() else {}
    names = set(a) | set(b) | set(lab)
    bad = {n: [d for d, s in zip(_PAIR_DIRS, (a, b, lab), strict=True) if n not in s] for n in names}
    bad = {n: missing for n, missing in bad.items() if missing}
    if bad:
        shown = ", ".join(f"{n!r} lacks {'/'.join(m)}" for n, m in sorted(bad.items())[:5])
        raise DatasetLayoutError(
            f"set {name!r} has incomplete pairs: {shown}{' ...' if len(bad) > 5 else ''}; "
            "every <name> needs A/<name>, B/<name> and label/<name> (remove or complete them)"
        )
    if valid_dir.is_dir():
        no_valid = sorted(names - set(v))
        if no_valid:
            log.warning("set %r: no valid/ mask for %s; all their pixels count", name, no_valid)
    return [PairFiles(name, n, a[n], b[n], lab[n], v.get(n)) for n in sorted(names)]


def index_data(root: str | Path, sets: Sequence[str] | None = None) -> DataIndex:
    """Find the change sets under ``root`` (or only ``sets``, in that order).

    Raises :class:`DatasetNotFoundError` when ``root`` or a requested set is missing, and
    :class:`DatasetLayoutError` for incomplete pairs. Folders that are not change sets are listed in
    ``DataIndex.skipped`` (and logged); requesting one by name is an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"data folder {str(root)!r} does not exist; point --data at a folder holding <set>/A, <set>/B, <set>/label"
        )
    found: dict[str, list[PairFiles]] = {}
    skipped: dict[str, str] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        missing = [s for s in _PAIR_DIRS if not (d / s).is_dir()]
        if missing:
            skipped[d.name] = f"not a change set (no {'/'.join(missing)}/ folder)"
            log.info("skipping %s/: %s", d.name, skipped[d.name])
            continue
        found[d.name] = []  # filled below, only for the sets asked for
    wanted = list(found) if sets is None else list(dict.fromkeys(sets))
    unknown = [s for s in wanted if s not in found]
    if unknown:
        hint = [s for s in unknown if s in skipped]
        why = f" ({', '.join(f'{s}: {skipped[s]}' for s in hint)})" if hint else ""
        raise DatasetNotFoundError(
            f"no change set {unknown!r} under {str(root)!r}{why}; available: {sorted(found)!r}"
        )
    if not wanted:
        raise DatasetNotFoundError(
            f"no change sets under {str(root)!r} (need <set>/A, <set>/B, <set>/label folders); "
            f"skipped: {sorted(skipped)!r}"
        )
    index = {s: _index_set(root / s) for s in wanted}
    return DataIndex(root=root, sets=index, skipped=skipped)


def resolution_for_set(set_name: str) -> float | None:
    """Default resolution (m/pixel) from :data:`DEFAULT_RESOLUTION_M`, matched on a word of ``set_name``
    (``"sztaki_airchange"`` -> 1.5); None when no entry matches."""
    words = re.split(r"[^a-z0-9]+", set_name.lower())
    for key, res in DEFAULT_RESOLUTION_M.items():
        if any(w.startswith(key) for w in words):
            return res
    return None


# -- reading files ------------------------------------------------------------------------------
def _band_name(description: str | None) -> str | None:
    """soilwatch band name for a band description such as ``"B04 red 665nm (10m)"``, or None."""
    if not description:
        return None
    text = description.lower()
    code = re.search(r"\bb0?(\d{1,2})\b", text)
    if code and int(code.group(1)) in _S2_BANDS:
        return _S2_BANDS[int(code.group(1))]
    words = set(re.findall(r"[a-z0-9]+", text))
    if "near" in words and "infrared" in words:
        return "nir"
    for w, band in _WORDS.items():
        if w in words:
            return band
    return None


def _geo_resolution_m(transform: object, crs: object, shape: tuple[int, int]) -> float | None:
    """Metres per pixel (geometric mean of x and y) from a rasterio transform and CRS; None if not georeferenced."""
    if crs is None or transform is None or getattr(transform, "is_identity", False):
        return None
    xres, yres = abs(transform.a), abs(transform.e)  # type: ignore[attr-defined]
    if crs.is_geographic:  # type: ignore[attr-defined]
        lat = transform.f + transform.e * shape[0] / 2  # type: ignore[attr-defined]
        xm = xres * _M_PER_DEG_LON * math.cos(math.radians(lat))
        ym = yres * _M_PER_DEG_LAT
        return math.sqrt(xm * ym)
    factor = crs.linear_units_factor[1]  # type: ignore[attr-defined]
    return math.sqrt(xres * yres) * factor


def _read_png(path: Path) -> RawImage:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            alpha = np.asarray(im.getchannel("A")) > 0 if mode in ("RGBA", "LA") else None
            arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise DataReadError(f"cannot read image {str(path)!r}: {exc}; re-export it or remove the pair") from exc
    data = np.moveaxis(arr, -1, 0).astype(np.float32)
    valid = alpha if alpha is not None else np.ones(arr.shape[:2], dtype=bool)
    return RawImage(data=data, bands=RGB, valid=valid, resolution_m=None)


def _read_tif(path: Path) -> RawImage:
    import rasterio

    try:
        with rasterio.open(path) as src:
            raw = src.read()
            masks = src.read_masks()
            descriptions = src.descriptions
            colorinterp = [c.name for c in src.colorinterp]
            res = _geo_resolution_m(src.transform, src.crs, src.shape)
    except rasterio.errors.RasterioError as exc:
        raise DataReadError(f"cannot read image {str(path)!r}: {exc}; re-export it or remove the pair") from exc
    names = [_band_name(d) for d in descriptions]
    if not any(names):
        names = [c if c in ("red", "green", "blue") else None for c in colorinterp]
    if not any(names) and raw.shape[0] in (3, 4):
        names = list(BAND_NAMES[: raw.shape[0]])
        log.info("%s has no band descriptions; assuming %s", path, names)
    missing = [b for b in RGB if b not in names]
    if missing:
        raise DataReadError(
            f"cannot tell the {missing!r} band(s) of {str(path)!r} (descriptions {descriptions!r}); "
            "set band descriptions such as 'B04 red' with rasterio or gdal_edit.py"
        )
    order = [names.index(b) for b in BAND_NAMES if b in names]
    return RawImage(
        data=raw[order].astype(np.float32),
        bands=tuple(b for b in BAND_NAMES if b in names),
        valid=(masks > 0).all(axis=0),
        resolution_m=res,
    )


def read_image(path: str | Path) -> RawImage:
    """Read a PNG or GeoTIFF image; bands renamed and reordered, values as stored (float32)."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        return _read_png(path)
    return _read_tif(path)


def read_mask(path: str | Path, *, binary_values: bool = True) -> np.ndarray:
    """Read a single-band mask as bool ``(h, w)``.

    With ``binary_values`` (labels) the file must hold only 0 and 255 (255 = True); otherwise (valid
    masks) any non-zero value is True. Raises :class:`DataReadError` for unreadable files and other values.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".png":
            from PIL import Image

            with Image.open(path) as im:
                arr = np.asarray(im)
        else:
            import rasterio

            with rasterio.open(path) as src:
                arr = src.read(1)
    except Exception as exc:  # PIL and rasterio raise several unrelated types for corrupt files
        raise DataReadError(f"cannot read mask {str(path)!r}: {exc}; re-export it or remove the pair") from exc
    if arr.ndim == 3:
        if not (arr == arr[..., :1]).all():
            raise DataReadError(f"mask {str(path)!r} has {arr.shape[-1]} different channels; save it single-band")
        arr = arr[..., 0]
    if not binary_values:
        return arr != 0
    values = np.unique(arr)
    if not np.isin(values, (0, 255)).all():
        raise DataReadError(
            f"label {str(path)!r} holds values {values[:8].tolist()!r}; expected 0 (no change) and 255 (change) "
            "only: recode it, e.g. np.where(mask > 127, 255, 0)"
        )
    return arr == 255


# -- normalisation ------------------------------------------------------------------------------
def normalise_pair(
    before: np.ndarray, after: np.ndarray, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Bring a before/after pair onto one [0, 1] scale with the detector's own radiometry.

    Delegates to :func:`detector.radiometry.fit_normaliser` (linear after→before mapping on
    pseudo-invariant pixels, one common gain for all bands), so training, evaluation and detection
    see the same scale. Pixels outside ``valid`` are 0 in both outputs. Inputs are not modified.

    Args:
        before, after: numeric ``(bands, h, w)`` arrays on the same grid, any units (e.g. uint8 DN,
            uint16 reflectance x 10000).
        valid: bool ``(h, w)``, True where both images hold data; None means every pixel.
            This is image validity (no-data), not a sparse label mask.

    Returns:
        ``(before01, after01)``: float32 ``(bands, h, w)`` in [0, 1].
    """
    if before.shape != after.shape or before.ndim != 3:
        raise ValueError(
            f"before and after must both be (bands, h, w) with one shape; got {before.shape!r} and {after.shape!r}"
        )
    if valid is None:
        valid = np.ones(before.shape[1:], dtype=bool)
    elif valid.shape != before.shape[1:]:
        raise ValueError(f"valid must be (h, w) = {before.shape[1:]!r}, got {valid.shape!r}")
    if int(valid.sum()) < 100:
        return np.zeros(before.shape, np.float32), np.zeros(after.shape, np.float32)
    norm = fit_normaliser(before, after, valid)
    b01, a01 = norm.scale(before), norm.match_and_scale(after)
    b01[:, ~valid] = 0.0
    a01[:, ~valid] = 0.0
    return b01, a01


# -- pairs --------------------------------------------------------------------------------------
def read_pair(files: PairFiles) -> ChangePair:
    """Read, check and normalise one pair (see :class:`ChangePair`)."""
    before, after = read_image(files.before), read_image(files.after)
    label = read_mask(files.label)
    shapes = {"A": before.data.shape[1:], "B": after.data.shape[1:], "label": label.shape}
    if len(set(shapes.values())) != 1:
        raise DatasetLayoutError(
            f"pair {files.set_name}/{files.name}: grids differ {shapes!r}; resample B and label onto A's grid"
        )
    if before.bands != after.bands:
        raise DatasetLayoutError(
            f"pair {files.set_name}/{files.name}: A has bands {before.bands!r} but B has {after.bands!r}"
        )
    image_valid = before.valid & after.valid
    valid = image_valid.copy()
    if files.valid is not None:
        sparse = read_mask(files.valid, binary_values=False)
        if sparse.shape != label.shape:
            raise DatasetLayoutError(
                f"valid mask {str(files.valid)!r} is {sparse.shape!r}, label is {label.shape!r}; make them one grid"
            )
        valid &= sparse
    b01, a01 = normalise_pair(before.data, after.data, image_valid)
    res = before.resolution_m or resolution_for_set(files.set_name)
    if res is None:
        log.warning(
            "set %r: no georeferencing and no default resolution; using %g m/pixel (add it to DEFAULT_RESOLUTION_M)",
            files.set_name,
            FALLBACK_RESOLUTION_M,
        )
        res = FALLBACK_RESOLUTION_M
    return ChangePair(
        set_name=files.set_name,
        name=files.name,
        before=b01,
        after=a01,
        label=label & valid,
        valid=valid,
        bands=before.bands,
        resolution_m=float(res),
    )


def iter_pairs(root: str | Path | DataIndex, sets: Sequence[str] | None = None) -> Iterator[ChangePair]:
    """Yield every pair of the change sets under ``root`` (sets in order, pairs sorted by name)."""
    index = root if isinstance(root, DataIndex) else index_data(root, sets)
    for pairs in index.sets.values():
        for files in pairs:
            yield read_pair(files)


class ChangeSetDataset:
    """Map-style dataset of training samples (:meth:`ChangePair.as_sample`), read lazily.

    Works as a ``torch.utils.data.Dataset`` (``len`` and integer indexing) without importing torch.
    """

    def __init__(self, root: str | Path, sets: Sequence[str] | None = None) -> None:
        self.index = index_data(root, sets)
        self.files = [f for pairs in self.index.sets.values() for f in pairs]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return read_pair(self.files[i]).as_sample()

    def __repr__(self) -> str:
        return f"ChangeSetDataset({self.index!r})"
