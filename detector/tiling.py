"""Cutting an area of a grid into model windows with context margins. Pure window arithmetic.

Every pixel of the area belongs to exactly one tile *core*; the model sees the core plus
``margin`` pixels of context on each side (less at the area's edge, where the read window is
clipped and the array padded by reflection). Predictions are kept for the core only, so tiles join
without seams whenever ``margin`` covers the model's receptive field ("overlap-tile" strategy).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rasterio.windows import Window

__all__ = ["Tile", "make_tiles", "count_tiles"]


@dataclass(frozen=True)
class Tile:
    """``core``: the pixels this tile decides; ``read``: core + context, clipped to the area.

    Both windows are in the grid's pixel coordinates. ``pad`` is ``(top, bottom, left, right)``: how
    many pixels to add by reflection so the read array has the full ``tile_size`` shape.
    """

    index: int
    core: Window
    read: Window
    pad: tuple[int, int, int, int]

    @property
    def core_in_read(self) -> tuple[slice, slice]:
        """Row and column slices of the core inside the padded read array."""
        r0 = int(self.core.row_off - self.read.row_off) + self.pad[0]
        c0 = int(self.core.col_off - self.read.col_off) + self.pad[2]
        return slice(r0, r0 + int(self.core.height)), slice(c0, c0 + int(self.core.width))


def _starts(offset: int, length: int, step: int) -> list[int]:
    return list(range(offset, offset + length, step))


def count_tiles(area: Window, *, tile_size: int, margin: int) -> int:
    step = tile_size - 2 * margin
    return len(_starts(0, int(area.height), step)) * len(_starts(0, int(area.width), step))


def make_tiles(area: Window, *, tile_size: int, margin: int, clip: Window | None = None) -> Iterator[Tile]:
    """Tiles covering ``area`` row by row; cores are ``tile_size - 2 * margin`` pixels square.

    Read windows are clipped to ``clip`` (default ``area``), which must contain ``area``: a work
    unit of a larger scan reads its context from beyond its own edges, so units join seamlessly.
    """
    if margin < 0 or tile_size <= 2 * margin:
        raise ValueError(f"tile_size {tile_size!r} must exceed twice the margin {margin!r}")
    if area.width < 1 or area.height < 1:
        raise ValueError(f"area must not be empty, got {area!r}")
    clip = clip or area
    if not (
        clip.col_off <= area.col_off
        and clip.row_off <= area.row_off
        and clip.col_off + clip.width >= area.col_off + area.width
        and clip.row_off + clip.height >= area.row_off + area.height
    ):
        raise ValueError(f"clip {clip!r} must contain area {area!r}")
    step = tile_size - 2 * margin
    a_col, a_row = int(area.col_off), int(area.row_off)
    a_col_end, a_row_end = a_col + int(area.width), a_row + int(area.height)
    k_col, k_row = int(clip.col_off), int(clip.row_off)
    k_col_end, k_row_end = k_col + int(clip.width), k_row + int(clip.height)
    index = 0
    for row in _starts(a_row, int(area.height), step):
        core_h = min(step, a_row_end - row)
        r0, r1 = max(k_row, row - margin), min(k_row_end, row + core_h + margin)
        for col in _starts(a_col, int(area.width), step):
            core_w = min(step, a_col_end - col)
            c0, c1 = max(k_col, col - margin), min(k_col_end, col + core_w + margin)
            top = margin - (row - r0)
            left = margin - (col - c0)
            bottom = tile_size - (r1 - r0) - top
            right = tile_size - (c1 - c0) - left
            yield Tile(
                index=index,
                core=Window(col, row, core_w, core_h),
                read=Window(c0, r0, c1 - c0, r1 - r0),
                pad=(top, bottom, left, right),
            )
            index += 1
