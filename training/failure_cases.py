"""Draw before / after / label / prediction panels of labelled pairs, as in the model card's failure cases.

    python -m training.failure_cases --model /tmp/sw_runs/loso_dsifn.pt --pair dsifn_changeformer/4_4 \
        -o models/weights/failure_dsifn_4_4.png

The prediction panel shows the after image with predicted change that overlaps the label in green (hit), predicted
change outside it in red (false alarm) and labelled change not predicted in blue (miss), at the model's threshold.
Use a model that never saw the pair's set (a leave-one-set-out model) so that the picture shows a real failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["draw_panels", "main"]

_HIT, _FALSE, _MISS = (40, 200, 40), (220, 30, 30), (30, 90, 230)


def _rgb(img: np.ndarray) -> np.ndarray:
    """``(bands, h, w)`` in [0, 1], RGB first → uint8 ``(h, w, 3)``, stretched like the detector's scale."""
    return (np.clip(img[:3].transpose(1, 2, 0) / 0.8, 0, 1) * 255).astype(np.uint8)


def draw_panels(before: np.ndarray, after: np.ndarray, label: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """One uint8 RGB image: before | after | label | prediction over the after image, 4 px apart."""
    h, w = label.shape
    overlay = _rgb(after).copy()
    for mask, colour in ((predicted & label, _HIT), (predicted & ~label, _FALSE), (~predicted & label, _MISS)):
        overlay[mask] = (0.35 * overlay[mask] + 0.65 * np.array(colour)).astype(np.uint8)
    label_rgb = np.repeat((label * 255).astype(np.uint8)[..., None], 3, axis=2)
    gap = np.full((h, 4, 3), 255, np.uint8)
    return np.concatenate([_rgb(before), gap, _rgb(after), gap, label_rgb, gap, overlay], axis=1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.failure_cases", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="registered model name or weights file")
    parser.add_argument("--pair", required=True, help="<set>/<name> under --data, e.g. dsifn_changeformer/4_4")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="shared data folder")
    parser.add_argument("-o", "--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--max-width", type=int, default=1040, help="shrink the picture to this width (pixels)")
    args = parser.parse_args(argv)
    from PIL import Image

    from models import load_model
    from models.errors import ModelError
    from training.data import index_data, read_pair
    from training.errors import TrainingError
    from training.evaluate import predict_pair

    set_name, _, name = args.pair.partition("/")
    try:
        files = next((f for f in index_data(args.data, [set_name]).sets.get(set_name, []) if f.name == name), None)
        if files is None:
            raise TrainingError(f"no pair {args.pair!r} under {str(args.data)!r}")
        pair = read_pair(files)
        model = load_model(args.model)
        prob = predict_pair(model, pair.before, pair.after, pair.bands)
    except (TrainingError, ModelError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    predicted = (prob >= model.info.threshold) & pair.valid
    image = Image.fromarray(draw_panels(pair.before, pair.after, pair.label & pair.valid, predicted))
    if image.width > args.max_width:
        image = image.resize((args.max_width, round(image.height * args.max_width / image.width)), Image.LANCZOS)
    image.quantize(colors=128).save(args.out, optimize=True)  # a palette keeps the card light
    print(f"wrote {args.out} ({model.info.label} on {args.pair})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
