"""Compliance matching of 100,000 patches against 50,000 approved projects (issue 5: goal under 5 s).

Sizes (defaults): 100,000 synthetic disturbance patches and 50,000 approved projects, seeded random
polygons over a 100 km x 100 km area in a metric CRS (CGCS2000 / Gauss-Krüger-like coordinates, metres).

* Projects, 1-50 ha (log-uniform): 80 % responsibility outlines (rotated rectangles, aspect 1-4),
  10 % schematic outlines (示意性范围; grown by ``schematic_tolerance_m`` inside the matcher, as the
  service does), 10 % given only as a point and buffered by the service's default ``point_buffer_m``
  (100 m, ``shapely.buffer`` as in ``service.project_import``).
* Patches, 200 m² - 2 ha target (log-uniform), irregular 10-vertex star-shaped polygons: 60 % placed
  around a project's centre (jittered, so some spill out of it and some miss it), 40 % anywhere.

The timed part is exactly one call of :func:`service.matching.match_patches` (default thresholds,
``schematic`` flags given); generation is timed apart. Wall and CPU seconds (``time.process_time``) are
both shown: on a shared machine the CPU seconds are the steadier figure. The 1-minute load average is
printed before and after the run. Peak RSS is the process's ``ru_maxrss`` (generation included); the
RSS before matching is shown beside it.

Run: ``.venv/bin/python benchmarks/bench_matching.py [--patches 100000] [--projects 50000] [--repeat 3] [--seed 5]``
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.matching import MatchThresholds, match_patches  # noqa: E402

SIDE_M = 100_000.0  # 100 km
X0, Y0 = 39_500_000.0, 4_400_000.0  # Gauss-Krüger-like false easting (zone 39) and northing
POINT_BUFFER_M = 100.0  # Settings.point_buffer_m default


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_projects(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(geometries, schematic flags, centres)`` of ``n`` projects."""
    area = np.exp(rng.uniform(np.log(1e4), np.log(50e4), n))  # 1-50 ha
    aspect = rng.uniform(1.0, 4.0, n)
    w = np.sqrt(area * aspect)
    h = area / w
    cx = rng.uniform(0, SIDE_M, n) + X0
    cy = rng.uniform(0, SIDE_M, n) + Y0
    theta = rng.uniform(0, np.pi, n)
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]])
    local = corners[None, :, :] * np.stack([w, h], axis=1)[:, None, :]
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    xs = local[..., 0] * cos - local[..., 1] * sin + cx[:, None]
    ys = local[..., 0] * sin + local[..., 1] * cos + cy[:, None]
    geoms = shapely.polygons(np.stack([xs, ys], axis=-1))
    kind = rng.choice(3, size=n, p=[0.8, 0.1, 0.1])  # 0 responsibility, 1 schematic, 2 point
    points = kind == 2
    geoms[points] = shapely.buffer(shapely.points(cx[points], cy[points]), POINT_BUFFER_M)
    return geoms, kind == 1, np.stack([cx, cy], axis=1)


def make_patches(rng: np.random.Generator, n: int, centres: np.ndarray) -> np.ndarray:
    """``n`` irregular patches, 60 % around project centres."""
    k = 10
    area = np.exp(rng.uniform(np.log(200.0), np.log(2e4), n))  # 200 m² - 2 ha target
    angles = np.sort(rng.uniform(0, 2 * np.pi, (n, k)), axis=1)
    radii = rng.uniform(0.6, 1.4, (n, k))
    ux, uy = radii * np.cos(angles), radii * np.sin(angles)
    unit_area = 0.5 * np.abs(np.sum(ux * np.roll(uy, -1, 1) - np.roll(ux, -1, 1) * uy, axis=1))
    scale = np.sqrt(area / unit_area)[:, None]
    near = rng.random(n) < 0.6
    cx = rng.uniform(0, SIDE_M, n) + X0
    cy = rng.uniform(0, SIDE_M, n) + Y0
    pick = rng.integers(0, len(centres), near.sum())
    jitter = rng.normal(0, 250.0, (near.sum(), 2))  # metres
    cx[near] = centres[pick, 0] + jitter[:, 0]
    cy[near] = centres[pick, 1] + jitter[:, 1]
    xs = ux * scale + cx[:, None]
    ys = uy * scale + cy[:, None]
    ring = np.stack([np.concatenate([xs, xs[:, :1]], 1), np.concatenate([ys, ys[:, :1]], 1)], axis=-1)
    geoms = shapely.polygons(ring)
    bad = ~shapely.is_valid(geoms)  # a few near-equal angles self-intersect: use their hull
    geoms[bad] = shapely.convex_hull(geoms[bad])
    return geoms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=100_000)
    parser.add_argument("--projects", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed calls of match_patches")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    projects, schematic, centres = make_projects(rng, args.projects)
    patches = make_patches(rng, args.patches, centres)
    gen_s = time.perf_counter() - t0
    assert shapely.is_valid(projects).all() and shapely.is_valid(patches).all()
    rss_before = _rss_mb()

    thresholds = MatchThresholds()
    times: list[float] = []
    cpu: list[float] = []
    results = []
    load_before = os.getloadavg()[0]
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        results = match_patches(patches, projects, thresholds=thresholds, schematic=schematic)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    load_after = os.getloadavg()[0]
    counts = Counter(r.category.value for r in results)
    multi = sum(1 for r in results if len(r.overlaps) > 1)

    print(f"# match_patches: {args.patches:,} patches x {args.projects:,} projects (seed {args.seed})\n")
    print(f"Python {platform.python_version()}, shapely {shapely.__version__}, GEOS {shapely.geos_version_string}, "
          f"{os.cpu_count()} CPUs; generation {gen_s:.1f} s; projects: {int(schematic.sum()):,} schematic, "
          f"point-buffered ≈ 10 %; load average (1 min) {load_before:.2f} before, "
          f"{load_after:.2f} after\n")  # fmt: skip
    print("| calls | wall s (best) | wall s (median) | wall s (each) | CPU s (best) | RSS before MB | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {len(times)} | {min(times):.2f} | {statistics.median(times):.2f} | "
          f"{', '.join(f'{t:.2f}' for t in times)} | {min(cpu):.2f} | {rss_before:.0f} | "
          f"{_peak_rss_mb():.0f} |")  # fmt: skip
    print("\n| category | patches | share |")
    print("|---|---|---|")
    for cat, c in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"| {cat} | {c:,} | {c / len(results):.1%} |")
    print(f"\npatches overlapping more than one project: {multi:,}")
    print(f"goal under 5 s: {'met' if min(times) < 5 else 'missed'} (best {min(times):.2f} s)")


if __name__ == "__main__":
    main()
