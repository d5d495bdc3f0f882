"""training.confidence: object tallies of the patches at or above a confidence, against soilwatch eval's."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tests.training.fake_data import RuleModel
from training.confidence import main, objects_by_confidence
from training.data import index_data
from training.evaluate import evaluate


class _GradedModel(RuleModel):
    """The perfect rule of the fake data, with a confidence that grows from left to right (0.55 at column 0 to
    0.95 at the right edge) on the changed pixels: objects further right are surer."""

    def predict(self, x: np.ndarray, bands: Sequence[str]) -> np.ndarray:
        hit = super().predict(x, bands)
        ramp = np.linspace(0.55, 0.95, x.shape[-1], dtype=np.float32)
        return hit * ramp[None, None, :]


def test_the_first_cut_is_soilwatch_evals_objects_and_cuts_drop_the_left_objects(fake_data: Path) -> None:
    model = _GradedModel()
    sets = ["pngset", "tifset"]
    tallies = objects_by_confidence(model, fake_data, sets, cuts=(0.5, 0.7, 0.99), min_area_m2=0)
    report = evaluate(model, index_data(fake_data, sets), min_area_m2=0)
    for name in sets:
        every, sure, none = tallies[name]
        plain = report.sets[name].objects
        assert (every.predicted, every.hits, every.found, every.true) == (
            plain.predicted, plain.hits, plain.found, plain.true)
        assert every.predicted > 0 and every.precision == 1.0  # the rule is perfect on this data
        assert none.predicted == 0 and none.found == 0 and none.true == every.true
    # pngset's p1 has a change at columns 4-10 (mean confidence < 0.6 on the 64 px wide image): dropped at 0.7
    every, sure, _ = tallies["pngset"]
    assert sure.predicted < every.predicted and sure.found < every.found and sure.precision == 1.0


def test_cli_writes_the_table_and_refuses_bad_cuts(
    fake_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "conf.json"
    assert main(["--data", str(fake_data), "--model", "baseline", "--sets", "pngset", "--cuts", "0.5,0.8",
                 "--as-detected", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [row["min_confidence"] for row in report["sets"]["pngset"]] == [0.5, 0.8]
    assert report["rule"]["as_detected"] is True and "confidence >= 0.80" in capsys.readouterr().out
    assert main(["--data", str(fake_data), "--cuts", "0.5,1.5"]) == 1
    assert "cuts must be numbers in [0, 1]" in capsys.readouterr().err
    assert main(["--data", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err
