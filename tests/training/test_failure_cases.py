"""``python -m training.failure_cases``: the model card's before / after / label / prediction panels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from training.failure_cases import draw_panels, main


def test_panels_colour_hits_false_alarms_and_misses() -> None:
    img = np.full((3, 10, 10), 0.4, np.float32)
    label = np.zeros((10, 10), bool)
    label[:5] = True
    predicted = np.zeros((10, 10), bool)
    predicted[3:8] = True
    out = draw_panels(img, img, label, predicted)
    assert out.shape == (10, 4 * 10 + 3 * 4, 3) and out.dtype == np.uint8
    overlay = out[:, -10:]
    hit, false, miss, quiet = overlay[4, 0], overlay[6, 0], overlay[1, 0], overlay[9, 0]
    assert hit[1] > hit[0] and hit[1] > hit[2]  # green
    assert false[0] > false[1] and false[0] > false[2]  # red
    assert miss[2] > miss[0] and miss[2] > miss[1]  # blue
    assert len(set(quiet.tolist())) == 1  # untouched grey
    assert out[0, 2 * 14].tolist() == [255, 255, 255] and out[9, 2 * 14].tolist() == [0, 0, 0]  # the label panel


def test_a_pair_of_the_fake_sets_is_drawn(tmp_path: Path, fake_data: Path, test_models: None) -> None:
    out = tmp_path / "case.png"
    assert main(["--model", "test-perfect", "--pair", "pngset/p1", "--data", str(fake_data), "-o", str(out)]) == 0
    assert Image.open(out).width > 0
    assert main(["--model", "test-perfect", "--pair", "pngset/nope", "--data", str(fake_data), "-o", str(out)]) == 2
