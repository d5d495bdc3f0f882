"""Window arithmetic: every pixel in exactly one core, context within the area, full-size padded reads."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.windows import Window

from detector.tiling import count_tiles, make_tiles


@settings(max_examples=60, deadline=None)
@given(
    col=st.integers(0, 50),
    row=st.integers(0, 50),
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    tile=st.integers(20, 128),
    margin=st.integers(0, 9),
)
def test_cores_partition_the_area(col: int, row: int, width: int, height: int, tile: int, margin: int) -> None:
    area = Window(col, row, width, height)
    cover = np.zeros((row + height, col + width), dtype=np.int32)
    tiles = list(make_tiles(area, tile_size=tile, margin=margin))
    assert len(tiles) == count_tiles(area, tile_size=tile, margin=margin)
    for t in tiles:
        r, c = int(t.core.row_off), int(t.core.col_off)
        cover[r : r + int(t.core.height), c : c + int(t.core.width)] += 1
        # the read window holds the core and stays inside the area
        assert t.read.col_off <= t.core.col_off and t.read.row_off <= t.core.row_off
        assert t.read.col_off + t.read.width >= t.core.col_off + t.core.width
        assert t.read.col_off >= col and t.read.row_off >= row
        assert t.read.col_off + t.read.width <= col + width
        assert t.read.row_off + t.read.height <= row + height
        top, bottom, left, right = t.pad
        assert min(t.pad) >= 0
        assert top + bottom + t.read.height == tile and left + right + t.read.width == tile
        rows, cols = t.core_in_read
        assert rows.stop - rows.start == t.core.height and cols.stop - cols.start == t.core.width
        # tiles away from the area edge see the full margin of context on both sides
        if t.core.col_off - margin >= col and t.core.col_off + t.core.width + margin <= col + width:
            assert t.read.width == t.core.width + 2 * margin and left == 0
    inside = cover[row:, col:]
    assert inside.min() == 1 and inside.max() == 1
    assert cover.sum() == width * height


def test_bad_tile_size_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="twice the margin"):
        list(make_tiles(Window(0, 0, 10, 10), tile_size=16, margin=8))
