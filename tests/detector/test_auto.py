"""``--model auto``: the learned model for two dates of fine imagery, the baseline otherwise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from detector.auto import LEARNED_MAX_RESOLUTION_M, choose_model, resolve_options
from detector.errors import DetectorError
from detector.pipeline import DetectOptions, detect_pair
from tests.fixtures import GK_ORIGIN, field_scene


def test_rules() -> None:
    assert choose_model(0.5)[0] == choose_model(2.0)[0] == choose_model(LEARNED_MAX_RESOLUTION_M)[0] == "changenet"
    name, why = choose_model(10.0)
    assert name == "baseline" and "10.0 m" in why
    assert choose_model(1.0, two_dates=False)[0] == "baseline"
    assert choose_model(1.0, has_config=True)[0] == "baseline"


def _at(tif: Callable[..., Path], name: str, data: np.ndarray, metres: float) -> Path:
    return tif(name, data, transform=Affine(metres, 0, GK_ORIGIN[0], 0, -metres, GK_ORIGIN[1]))


def test_resolve_reads_the_before_image(tif: Callable[..., Path]) -> None:
    before, after = field_scene()
    fine = _at(tif, "fine.tif", before, 1.0)
    coarse = _at(tif, "coarse.tif", before, 10.0)
    assert resolve_options(DetectOptions(), fine).model == "changenet"
    assert resolve_options(DetectOptions(), coarse).model == "baseline"
    assert resolve_options(DetectOptions(), None).model == "baseline"
    assert resolve_options(DetectOptions(model_config={"w_change": 2.0}), fine).model == "baseline"
    one_scale = DetectOptions(model_config={"scales": [1.0]})  # ChangeNet's own setting: it goes with changenet
    assert resolve_options(one_scale, fine) == replace(one_scale, model="changenet")
    assert resolve_options(one_scale, coarse) == replace(one_scale, model="baseline", model_config=None)
    assert resolve_options(DetectOptions(model="baseline"), fine).model == "baseline"  # a named model stays
    with pytest.raises(DetectorError):
        resolve_options(DetectOptions(), tif("no_crs.tif", before, crs=None))


def test_detect_by_default_runs_the_model_auto_chose(tif: Callable[..., Path]) -> None:
    """The default is ``auto``: at 1 m the learned model runs and finds both new bare squares; at 10 m the
    baseline runs. Patches record which model made them."""
    assert DetectOptions().model == "auto"
    before, after = field_scene(squares=[(80, 80, 40, 40), (20, 150, 30, 60)])
    result = detect_pair(_at(tif, "b1.tif", before, 1.0), _at(tif, "a1.tif", after, 1.0))
    assert result.model.startswith("changenet@") and set(result.patches["model"]) == {result.model}
    areas = sorted(result.patches.area_m2)
    assert len(areas) == 2 and areas[0] == pytest.approx(1600, rel=0.15) and areas[1] == pytest.approx(1800, rel=0.15)
    coarse = detect_pair(_at(tif, "b10.tif", before, 10.0), _at(tif, "a10.tif", after, 10.0))
    assert coarse.model.startswith("baseline@")


def test_a_torch_model_on_the_cpu_gets_one_tile_thread() -> None:
    """Its own threads already use every core; ``--workers`` still wins. The baseline gets one per core."""
    from detector.pipeline import _tile_workers
    from models import get_model

    learned = get_model("changenet", num_threads=2, device="cpu")
    assert learned.threads_per_call == 2 and _tile_workers(DetectOptions(), learned) == 1
    assert _tile_workers(DetectOptions(workers=3), learned) == 3
    assert _tile_workers(DetectOptions(), get_model("baseline")) >= 1
