"""Which file band holds red, green, blue, NIR…: from ``--bands``, band descriptions or colour interpretation.

Works on metadata only (counts, names), so it is tested without files.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from detector.errors import BandMappingError
from models.base import BAND_NAMES, RGB

__all__ = ["BandMap", "parse_bands", "infer_bands", "common_bands"]

log = logging.getLogger(__name__)

# Words in band descriptions that name a band; Sentinel-2 codes included (OSCD, many archives).
_DESCRIPTION_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "b04", "b4", "r"),
    "green": ("green", "b03", "b3", "g"),
    "blue": ("blue", "b02", "b2", "b"),
    "nir": ("nir", "near infrared", "near-infrared", "b08", "b8", "nir1"),
    "swir1": ("swir1", "swir 1", "b11"),
    "swir2": ("swir2", "swir 2", "b12"),
}


@dataclass(frozen=True)
class BandMap:
    """1-based file band ``indexes`` for each band ``names`` entry, names in :data:`BAND_NAMES` order."""

    names: tuple[str, ...]
    indexes: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.indexes):
            raise BandMappingError(f"{len(self.names)} band names but {len(self.indexes)} indexes")
        if tuple(self.names[:3]) != RGB:
            raise BandMappingError(f"red, green and blue are required, got {self.names!r}")
        if len(set(self.names)) != len(self.names):
            raise BandMappingError(f"a band is named twice in {self.names!r}")
        if any(i < 1 for i in self.indexes):
            raise BandMappingError(f"band indexes start at 1, got {self.indexes!r}")

    def select(self, names: Sequence[str]) -> BandMap:
        """The same map restricted to ``names`` (kept in :data:`BAND_NAMES` order)."""
        keep = [n for n in self.names if n in names]
        return BandMap(tuple(keep), tuple(self.indexes[self.names.index(n)] for n in keep))

    def __str__(self) -> str:
        return ",".join(self.names) + "=" + ",".join(map(str, self.indexes))


def _ordered(mapping: dict[str, int]) -> BandMap:
    names = tuple(n for n in BAND_NAMES if n in mapping)
    return BandMap(names, tuple(mapping[n] for n in names))


def parse_bands(text: str, *, count: int | None = None) -> BandMap:
    """Parse ``"red,green,blue,nir=3,2,1,4"`` or just ``"3,2,1,4"`` (read as red, green, blue, nir…)."""
    raw = text.strip().replace(" ", "")
    if "=" in raw:
        left, right = raw.split("=", 1)
        names = [n.lower() for n in left.split(",") if n]
    else:
        right, names = raw, []
    try:
        indexes = [int(i) for i in right.split(",") if i]
    except ValueError:
        raise BandMappingError(
            f"cannot read --bands {text!r}: expected e.g. 'red,green,blue,nir=3,2,1,4' or '3,2,1,4'"
        ) from None
    if not names:
        names = list(BAND_NAMES[: len(indexes)])
    unknown = [n for n in names if n not in BAND_NAMES]
    if unknown:
        raise BandMappingError(f"unknown band name(s) {unknown!r} in --bands {text!r}; use {BAND_NAMES!r}")
    if len(names) != len(indexes):
        raise BandMappingError(f"--bands {text!r} names {len(names)} bands but gives {len(indexes)} indexes")
    if count is not None and any(i > count for i in indexes):
        raise BandMappingError(f"--bands {text!r} asks for band {max(indexes)} but the image has {count} band(s)")
    if not set(RGB) <= set(names):
        raise BandMappingError(f"--bands {text!r} must include red, green and blue")
    return _ordered(dict(zip(names, indexes, strict=True)))


def _match_description(description: str) -> str | None:
    text = description.strip().lower()
    for name, words in _DESCRIPTION_WORDS.items():
        for word in words:
            if len(word) <= 2:  # single letters and S2 codes only as whole tokens
                if word in re.split(r"[^a-z0-9]+", text):
                    return name
            elif word in text and not (name == "red" and "edge" in text):
                return name
    return None


def infer_bands(count: int, colorinterp: Sequence[str], descriptions: Sequence[str | None]) -> BandMap:
    """Guess the band map of a file; ``colorinterp`` holds GDAL names (``"red"``, ``"alpha"``, ``"undefined"``…).

    Order of evidence: band descriptions, then colour interpretation, then the conventions of the
    sensors soilwatch meets (3 bands: R,G,B; 4 bands: B,G,R,NIR as delivered for GF-1/2/6, ZY-3).
    """
    if count < 3:
        raise BandMappingError(
            f"the image has {count} band(s); soilwatch needs at least red, green and blue (3 bands)"
        )
    found: dict[str, int] = {}
    for i, desc in enumerate(descriptions, start=1):
        name = _match_description(desc) if desc else None
        if name and name not in found:
            found[name] = i
    if set(RGB) <= set(found):
        return _ordered(found)

    ci = [c.lower() for c in colorinterp]
    if all(c in ci for c in RGB):
        found = {c: ci.index(c) + 1 for c in RGB}
        rest = [i for i, c in enumerate(ci, start=1) if c in ("undefined", "gray", "grey") and i not in found.values()]
        if rest:
            found["nir"] = rest[0]
        return _ordered(found)

    usable = [i for i, c in enumerate(ci, start=1) if c != "alpha"] if ci else list(range(1, count + 1))
    if len(usable) == 3:
        return _ordered(dict(zip(RGB, usable, strict=True)))
    log.warning(
        "band order not recorded in the file; assuming blue, green, red, nir (GF-1/2/6 order). "
        "Pass --bands red,green,blue,nir=3,2,1,4 if that is wrong"
    )
    blue, green, red, nir = usable[:4]
    return _ordered({"red": red, "green": green, "blue": blue, "nir": nir})


def common_bands(before: BandMap, after: BandMap, *, allow_subset: bool) -> tuple[BandMap, BandMap]:
    """Make both dates use the same band names, or explain why they cannot."""
    if before.names == after.names:
        return before, after
    if not allow_subset:
        raise BandMappingError(
            f"before has bands {','.join(before.names)} but after has {','.join(after.names)}; "
            "pass --common-bands to compare only the bands both have, or --bands/--after-bands to set them"
        )
    shared = [n for n in before.names if n in after.names]
    return before.select(shared), after.select(shared)
