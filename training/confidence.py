"""Does a patch's confidence rank the leads? Object precision and recall when only patches at or above a confidence
are kept.

The detector gives every patch a ``confidence``: the mean change probability of its pixels. The service filters on
it (``GET /patches?min_confidence=``, the map's 最低置信度) and the map list sorts by it. This scores, per set, the
predicted objects (:data:`training.metrics.OBJECT_RULE`, at the model's threshold and ``--min-area-m2``) whose mean
probability is at least each cut in ``--cuts``: how many of the patches an inspector would skip were false alarms,
and how many true sites would be lost with them. Pixel scores are not computed here (``soilwatch eval`` has them,
for every patch).

    python -m training.confidence --model changenet --data ../shared/data --sets levircd_bit --json conf.json

Scores only mean something on sets the model never trained on (the shipped file: ``levircd_bit``; the
leave-one-set-out runs of ``training/configs/changenet_loso_*.yaml`` for the others).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.data import index_data, read_pair
from training.errors import TrainingError
from training.evaluate import detected_mask, predict_pair, scoring_rule
from training.metrics import ObjectCounts, min_area_px, score_objects_by_confidence

__all__ = ["CUTS", "objects_by_confidence", "main"]

#: the default cuts: the model's threshold (0.5, every patch) up to 0.9
CUTS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)

log = logging.getLogger(__name__)


def objects_by_confidence(
    model: Any, root: str | Path, sets: Sequence[str] | None = None, *, cuts: Sequence[float] = CUTS,
    min_area_m2: float = 200.0, as_detected: bool = False
) -> dict[str, list[ObjectCounts]]:
    """Per set, the pooled object tallies at each of ``cuts`` (in that order) of ``model`` on the change sets under
    ``root`` (:func:`training.data.index_data`), at ``model.info.threshold``; ``as_detected`` scores the map
    ``soilwatch detect`` turns into patches (:func:`training.evaluate.detected_mask`), else the bare map."""
    if not cuts or any(not 0.0 <= c <= 1.0 for c in cuts):
        raise ValueError(f"cuts must be numbers in [0, 1], got {list(cuts)!r}")
    min_area_px(min_area_m2, 1.0)  # checks min_area_m2 before any work
    thr = model.info.threshold
    out: dict[str, list[ObjectCounts]] = {}
    for set_name, files in index_data(root, sets).sets.items():
        pooled = [ObjectCounts() for _ in cuts]
        for f in files:
            pair = read_pair(f)
            prob = predict_pair(model, pair.before, pair.after, pair.bands)
            cut_px = min_area_px(min_area_m2, pair.resolution_m)
            pred = detected_mask(prob, thr, cut_px) if as_detected else prob >= thr
            counts = score_objects_by_confidence(pred, prob, pair.label, pair.valid, min_area_px=cut_px, cuts=cuts)
            pooled = [a + b for a, b in zip(pooled, counts, strict=True)]
            log.info("%s/%s scored", set_name, f.name)
        out[set_name] = pooled
    return out


def _row(cut: float, c: ObjectCounts) -> str:
    p = "  n/a" if c.predicted == 0 else f"{c.precision:.3f}"
    return f"  confidence >= {cut:.2f}: {c.predicted:5d} patches, precision {p} ({c.hits} hit), " \
           f"recall {c.recall:.3f} ({c.found}/{c.true} true objects found)"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.confidence", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="changenet", help="registered model name or a weights file (default changenet)")
    ap.add_argument("--data", required=True, help="folder of change sets laid out as <set>/A|B|label/")
    ap.add_argument("--sets", help="comma-separated set folder names (default: every change set under --data)")
    ap.add_argument("--cuts", default=",".join(str(c) for c in CUTS), help="comma-separated confidences in [0, 1]")
    ap.add_argument("--min-area-m2", type=float, default=200.0)
    ap.add_argument("--as-detected", action="store_true", help="score the map soilwatch detect turns into patches")
    ap.add_argument("--json", help="write the tallies to this file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from models.errors import ModelError
    from models.registry import load_model

    try:
        cuts = [float(v) for v in args.cuts.split(",")]
        model = load_model(args.model)
        sets = args.sets.split(",") if args.sets else None
        tallies = objects_by_confidence(model, args.data, sets, cuts=cuts, min_area_m2=args.min_area_m2,
                                        as_detected=args.as_detected)
    except (ValueError, OSError, TrainingError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for set_name, counts in tallies.items():
        print(f"{set_name} ({args.model}):")
        for cut, c in zip(cuts, counts, strict=True):
            print(_row(cut, c))
    if args.json:
        report = {
            "model": args.model, "data": str(args.data), "date": _dt.date.today().isoformat(),
            "command": "python -m training.confidence " + " ".join(sys.argv[1:] if argv is None else argv),
            "rule": scoring_rule(model.info.threshold, args.min_area_m2, as_detected=args.as_detected),
            "confidence": "the mean change probability of the object's pixels (the detector's patch confidence)",
            "sets": {s: [{"min_confidence": cut, "object": c.as_dict()} for cut, c in zip(cuts, counts, strict=True)]
                     for s, counts in tallies.items()},
        }
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
