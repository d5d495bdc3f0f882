"""An inbox of overlapping scenes of two dates, cut from one generated world, plus a broken file.

World: 640 x 512 px at 1 m in EPSG:4548 near 蓟州区 (inside the seeded district 120225). Before
(2023-06-01): two scenes split by columns, overlapping; after (2024-06-01): two scenes split by
rows, overlapping. Bare-soil squares appear in the after date, some across scene and unit borders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from affine import Affine

from tests.fixtures import field_scene, write_tif

ORIGIN = (512_000.0, 4_436_000.0)
WIDTH, HEIGHT = 640, 512
#: (row, col, height, width) px: inside a scene, across the before seam, across the after seam, across unit seams
SQUARES = [(40, 40, 40, 40), (100, 370, 40, 60), (250, 200, 60, 50), (400, 500, 60, 60), (120, 120, 20, 30)]
BEFORE = {"b_west_2023-06-01.tif": (0, 0, HEIGHT, 400), "b_east_2023-06-01.tif": (0, 300, HEIGHT, WIDTH - 300)}
AFTER = {"a_north_2024-06-01.tif": (0, 0, 300, WIDTH), "a_south_2024-06-01.tif": (220, 0, HEIGHT - 220, WIDTH)}


def _cut(path: Path, data: np.ndarray, row: int, col: int, h: int, w: int) -> Path:
    transform = Affine(1.0, 0, ORIGIN[0] + col, 0, -1.0, ORIGIN[1] - row)
    return write_tif(path, np.ascontiguousarray(data[:, row : row + h, col : col + w]), crs="EPSG:4548",
                     transform=transform)  # fmt: skip


def write_inbox(folder: Path, *, broken: bool = True) -> Path:
    """Write the scenes (and ``broken.tif``, a truncated file) into ``folder``; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    before, after = field_scene(HEIGHT, WIDTH, squares=SQUARES, seed=3)
    for name, (r, c, h, w) in BEFORE.items():
        _cut(folder / name, before, r, c, h, w)
    for name, (r, c, h, w) in AFTER.items():
        _cut(folder / name, after, r, c, h, w)
    if broken:
        whole = (folder / "a_north_2024-06-01.tif").read_bytes()
        (folder / "broken_2024-06-01.tif").write_bytes(whole[: len(whole) // 3])
    return folder
