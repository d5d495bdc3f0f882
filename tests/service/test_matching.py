"""Pure compliance matching: categories, overlap figures, schematic outlines, thresholds."""

from __future__ import annotations

import time

import numpy as np
import pytest
import shapely
from shapely.geometry import box

from service.matching import MatchThresholds, match_patches
from service.vocab import Category

PROJECT = box(0, 0, 1000, 1000)  # metres
T = MatchThresholds(min_patch_area_m2=200, max_outside_share=0.3, min_outside_area_m2=500,
                    relocation_distance_m=1000, schematic_tolerance_m=200)  # fmt: skip

CASES = [
    # (patch, expected category, expected outside share)
    (box(100, 100, 200, 200), Category.compliant, 0.0),
    (box(950, 100, 1050, 200), Category.suspected_out_of_bounds, 0.5),
    (box(995, 100, 1005, 130), Category.compliant, 0.5),  # half outside, but only 150 m² (< 500)
    (box(700, 100, 1100, 200), Category.compliant, 0.25),  # 10,000 m² outside, but only 25% (< 30%)
    (box(900, 100, 1300, 300), Category.suspected_out_of_bounds, 0.75),
    (box(1500, 0, 1600, 100), Category.suspected_relocated, 1.0),
    (box(5000, 5000, 5100, 5100), Category.suspected_unapproved, 1.0),
    (box(100, 100, 110, 110), Category.too_small, 0.0),
]


@pytest.mark.parametrize(("patch", "category", "share"), CASES)
def test_categories(patch, category, share):
    (result,) = match_patches([patch], [PROJECT], thresholds=T)
    assert result.category is category, result.reason
    if category is not Category.too_small:
        assert result.outside_share == pytest.approx(share)
    assert result.area_m2 == pytest.approx(patch.area)


def test_outside_area_floor():
    patch = box(950, 100, 1050, 200)  # 5,000 m² outside, 50%
    assert match_patches([patch], [PROJECT], thresholds=T)[0].category is Category.suspected_out_of_bounds
    floor = MatchThresholds(min_outside_area_m2=6000)
    assert match_patches([patch], [PROJECT], thresholds=floor)[0].category is Category.compliant


def test_overlap_figures_and_nearest():
    patch = box(900, 100, 1300, 300)  # 80,000 m², 20,000 inside
    (result,) = match_patches([patch], [box(5000, 0, 6000, 10), PROJECT], thresholds=T)
    assert result.overlap_area_m2 == pytest.approx(20_000)
    assert result.outside_area_m2 == pytest.approx(60_000)
    assert result.nearest_project == 1 and result.nearest_distance_m == 0
    assert [(o.project, round(o.overlap_share, 3)) for o in result.overlaps] == [(1, 0.25)]
    (far,) = match_patches([box(1500, 0, 1600, 100)], [box(5000, 0, 6000, 10), PROJECT], thresholds=T)
    assert far.nearest_project == 1 and far.nearest_distance_m == pytest.approx(500)
    assert "500 m" in far.reason


def test_overlapping_projects_are_not_counted_twice():
    patch = box(0, 0, 100, 100)
    (result,) = match_patches([patch], [box(0, 0, 100, 100), box(0, 0, 100, 100)], thresholds=T)
    assert result.overlap_area_m2 == pytest.approx(10_000) and result.outside_area_m2 == pytest.approx(0)
    assert result.category is Category.compliant and len(result.overlaps) == 2


def test_schematic_outlines_are_matched_loosely():
    patch = box(1100, 100, 1190, 200)  # 100 m east of the project, outside it
    strict = match_patches([patch], [PROJECT], thresholds=T)[0]
    loose = match_patches([patch], [PROJECT], thresholds=T, schematic=[True])[0]
    assert strict.category is Category.suspected_relocated
    assert loose.category is Category.compliant


def test_relocation_only_to_candidate_projects():
    patch = box(1500, 0, 1600, 100)
    result = match_patches([patch], [PROJECT], thresholds=T, relocation_candidates=[False])[0]
    assert result.category is Category.suspected_unapproved and result.nearest_project is None


def test_edge_contact_is_not_overlap():
    (result,) = match_patches([box(1000, 0, 1100, 100)], [PROJECT], thresholds=T)
    assert result.category is Category.suspected_relocated and result.overlaps == ()


def test_empty_inputs():
    assert match_patches([], [PROJECT]) == []
    (result,) = match_patches([box(0, 0, 100, 100)], [])
    assert result.category is Category.suspected_unapproved and result.nearest_project is None


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="max_outside_share"):
        MatchThresholds(max_outside_share=1.5)
    with pytest.raises(ValueError, match="one per project"):
        match_patches([PROJECT], [PROJECT], schematic=[True, False])


def test_thousands_of_patches_quickly():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200_000, size=(20_000, 2))
    patches = shapely.box(xy[:, 0], xy[:, 1], xy[:, 0] + 60, xy[:, 1] + 60)
    pxy = rng.uniform(0, 200_000, size=(10_000, 2))
    projects = shapely.box(pxy[:, 0], pxy[:, 1], pxy[:, 0] + 500, pxy[:, 1] + 400)
    start = time.perf_counter()
    results = match_patches(patches, projects, thresholds=T)
    elapsed = time.perf_counter() - start
    assert len(results) == 20_000
    assert {r.category for r in results} >= {Category.compliant, Category.suspected_unapproved}
    assert elapsed < 10, f"matching 20,000 × 10,000 took {elapsed:.1f} s"
