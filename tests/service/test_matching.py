"""Pure compliance matching: categories, overlap figures, schematic outlines, thresholds."""

from __future__ import annotations

import time

import numpy as np
import pytest
import shapely
import shapely.affinity
from hypothesis import given, settings
from hypothesis import strategies as st
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


def test_ties_go_to_the_lower_project_index():
    patch = box(100, 100, 200, 200)
    (inside,) = match_patches([patch], [box(0, 0, 500, 500), box(0, 0, 500, 500)], thresholds=T)
    assert [o.project for o in inside.overlaps] == [0, 1] and inside.nearest_project == 0
    (between,) = match_patches([box(1500, 0, 1600, 100)], [box(0, 0, 1000, 100), box(2100, 0, 3000, 100)])
    assert between.nearest_project == 0 and between.nearest_distance_m == pytest.approx(500)


def test_patch_partly_in_overlapping_projects():
    patch = box(0, 0, 300, 100)  # 30,000 m²; the projects cover x 0-200 together, sharing x 50-150
    projects = [box(0, 0, 150, 100), box(50, 0, 200, 100), box(5000, 5000, 5100, 5100)]
    (result,) = match_patches([patch], projects, thresholds=T)
    assert result.overlap_area_m2 == pytest.approx(20_000) and result.outside_area_m2 == pytest.approx(10_000)
    assert [(o.project, o.overlap_area_m2) for o in result.overlaps] == [(0, 15_000), (1, 15_000)]
    assert result.category is Category.suspected_out_of_bounds  # 33 % and 10,000 m² outside


# --- property test: the vectorised matcher against a plain per-patch reference -------------------------


def _reference(patches, projects, t, schematic, candidates):
    """The rules written out patch by patch with shapely's scalar operations (slow, obviously right)."""
    grown = [shapely.buffer(p, t.schematic_tolerance_m) if s else p for p, s in zip(projects, schematic, strict=True)]
    out = []
    for patch in patches:
        area = patch.area
        hits = {j: patch.intersection(g).area for j, g in enumerate(grown)}
        hits = {j: a for j, a in hits.items() if a > 0}
        covered = patch.intersection(shapely.union_all([grown[j] for j in hits])).area if hits else 0.0
        outside = max(area - covered, 0.0)
        share = outside / area if area else 0.0
        dists = {j: patch.distance(g) for j, g in enumerate(grown) if candidates[j]}
        if area < t.min_patch_area_m2:
            category = Category.too_small
        elif hits:
            bad = share > t.max_outside_share and outside >= t.min_outside_area_m2
            category = Category.suspected_out_of_bounds if bad else Category.compliant
        elif dists and min(dists.values()) <= t.relocation_distance_m:
            category = Category.suspected_relocated
        else:
            category = Category.suspected_unapproved
        out.append((category, area, covered, outside, share, hits, dists))
    return out


def _rectangle(draw, low: float, high: float):
    x, y = draw(st.integers(0, 3000)), draw(st.integers(0, 3000))
    w, h = draw(st.integers(int(low), int(high))), draw(st.integers(int(low), int(high)))
    shape = box(x, y, x + w, y + h)
    angle = draw(st.sampled_from([0, 0, 0, 17.5, 45, 90]))  # axis-aligned mostly: shared edges, exact ties
    return shapely.affinity.rotate(shape, angle) if angle else shape


@st.composite
def _layouts(draw):
    projects = []
    for _ in range(draw(st.integers(0, 7))):
        kind = draw(st.sampled_from(["rect", "rect", "point", "copy"]))
        if kind == "copy" and projects:  # an identical or shifted duplicate: overlapping projects
            dx = draw(st.sampled_from([0, 0, 50, 300]))
            projects.append(shapely.affinity.translate(draw(st.sampled_from(projects)), dx, 0))
        elif kind == "point":
            x, y = draw(st.integers(0, 3000)), draw(st.integers(0, 3000))
            projects.append(shapely.Point(x, y).buffer(100))
        else:
            projects.append(_rectangle(draw, 50, 1500))
    patches = []
    for _ in range(draw(st.integers(1, 10))):
        if projects and draw(st.booleans()):  # around a project, so that overlaps are common
            c = draw(st.sampled_from(projects)).centroid
            dx, dy = draw(st.integers(-400, 400)), draw(st.integers(-400, 400))
            w, h = draw(st.integers(5, 300)), draw(st.integers(5, 300))
            patches.append(box(c.x + dx, c.y + dy, c.x + dx + w, c.y + dy + h))
        else:
            patches.append(_rectangle(draw, 5, 400))
    schematic = draw(st.lists(st.booleans(), min_size=len(projects), max_size=len(projects)))
    candidates = draw(st.lists(st.booleans(), min_size=len(projects), max_size=len(projects)))
    return patches, projects, schematic, candidates


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


@settings(max_examples=300, deadline=None)
@given(_layouts(), st.sampled_from([T, MatchThresholds()]))
def test_matches_the_reference_on_random_layouts(layout, t):
    patches, projects, schematic, candidates = layout
    results = match_patches(patches, projects, thresholds=t, schematic=schematic, relocation_candidates=candidates)
    expected = _reference(patches, projects, t, schematic, candidates)
    for result, (category, area, covered, outside, share, hits, dists) in zip(results, expected, strict=True):
        borderline = (
            _close(share, t.max_outside_share) or _close(outside, t.min_outside_area_m2)
            or _close(area, t.min_patch_area_m2) or any(_close(d, t.relocation_distance_m) for d in dists.values())
        )  # fmt: skip
        if not borderline:  # exactly at a threshold, rounding may tip either way
            assert result.category is category, (result, category)
        assert result.area_m2 == pytest.approx(area)
        if category is Category.too_small:
            assert result.overlaps == () and result.nearest_project is None
            continue
        assert result.overlap_area_m2 == pytest.approx(covered, rel=1e-9, abs=1e-6)
        assert result.outside_area_m2 == pytest.approx(outside, rel=1e-9, abs=1e-6)
        assert result.outside_share == pytest.approx(share, rel=1e-9, abs=1e-9)
        got = {o.project: o.overlap_area_m2 for o in result.overlaps}
        assert got.keys() == hits.keys()
        assert all(_close(got[j], hits[j]) for j in hits)
        sizes = [o.overlap_area_m2 for o in result.overlaps]
        assert all(a >= b - 1e-6 for a, b in zip(sizes, sizes[1:], strict=False))  # largest overlap first
        if hits:
            assert result.nearest_project == result.overlaps[0].project and result.nearest_distance_m == 0
        elif dists:
            best = min(dists.values())
            assert result.nearest_distance_m == pytest.approx(best, abs=1e-6)
            assert _close(dists[result.nearest_project], best)
        else:
            assert result.nearest_project is None and result.nearest_distance_m is None
