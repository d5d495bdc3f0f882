"""Leave-one-pair-out cross-validation of a training recipe on one real set (``soilwatch crossval``).

Leave-one-set-out (the ``changenet_loso_*`` configs) asks how the recipe does on a kind of imagery and a definition
of change it never saw. This asks the other honest question: how it does on a *new image* of a set whose kind of
imagery and labels it was trained on — a bureau that has mapped 图斑 in its own area before, or the shipped model on
the next DSIFN-like tile. For each pair of the set one model is trained with the recipe unchanged except that this
pair is left out (``data.exclude_pairs``); that model is scored on that pair only, and the pairs' counts are pooled
exactly as :func:`training.evaluate.evaluate` pools a set. No score comes from a model that saw its pair.

Folds are written to ``out_dir/fold_<pair>.pt`` (with sidecars); a rerun skips the folds already finished with the
same config and resumes a fold from its checkpoint, so a crash costs at most one fold's unsaved steps.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.errors import TrainingError
from training.evaluate import PairResult, SetResult, predict_pair, score_pair, scoring_rule
from training.train import TrainConfig, data_root, train

__all__ = ["CrossvalResult", "cross_validate", "fold_config", "fold_path"]

PROTOCOL = ("leave-one-pair-out: one model per pair of the set, trained with the recipe on everything else "
            "(the other pairs of this set included), scored on the left-out pair only; counts pooled over the pairs")


@dataclass
class CrossvalResult:
    """What :func:`cross_validate` measured; ``report`` is the JSON written next to the folds."""

    set_name: str
    result: SetResult
    folds: list[dict[str, Any]]
    report: dict[str, Any]


def fold_config(cfg: TrainConfig, set_name: str, pair: str) -> TrainConfig:
    """``cfg`` with ``set_name/pair`` left out of training and no evaluation of its own (the fold is scored here)."""
    data = dataclasses.replace(cfg.data, exclude_pairs=(*cfg.data.exclude_pairs, f"{set_name}/{pair}"), eval_sets=())
    return dataclasses.replace(cfg, name=f"{cfg.name}-lopo-{pair}", data=data).checked(f"fold {pair}")


def fold_path(out_dir: Path, pair: str) -> Path:
    return Path(out_dir) / f"fold_{re.sub(r'[^A-Za-z0-9_.-]', '_', pair)}.pt"


def _finished(weights: Path, cfg: TrainConfig) -> bool:
    """True when ``weights`` is a finished fold of ``cfg``; a fold of another config is an error (never mixed in)."""
    if not weights.exists():
        return False
    side = weights.with_suffix(".json")
    try:
        made_with = json.loads(side.read_text(encoding="utf-8"))["config"]
    except (OSError, ValueError, KeyError) as exc:
        raise TrainingError(f"{str(weights)!r} has no readable sidecar {side.name!r} ({exc}); remove the fold "
                            "and rerun") from exc
    if made_with != json.loads(json.dumps(cfg.as_dict())):
        raise TrainingError(f"{str(weights)!r} was trained with another config; use a new output folder or remove "
                            "the old folds")
    return True


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cross_validate(
    cfg: TrainConfig,
    set_name: str,
    out_dir: str | Path,
    *,
    root: str | Path | None = None,
    min_area_m2: float = 200.0,
    device: str | None = None,
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> CrossvalResult:
    """Train and score one fold per pair of ``set_name`` (see the module doc); writes ``out_dir/crossval.json``.

    Raises :class:`TrainingError` when the recipe does not train on ``set_name`` (its scores there are already held
    out: use ``soilwatch eval``), or the set has fewer than two pairs.
    """
    from models import load_model
    from training.data import index_data, read_pair

    cfg = cfg.checked()
    say = progress or (lambda line: None)
    if set_name not in cfg.data.train_sets:
        raise TrainingError(f"the recipe does not train on {set_name!r} (data.train_sets "
                            f"{list(cfg.data.train_sets)!r}): its scores there are held out already; "
                            "run 'soilwatch eval' on them")
    if cfg.optim.distill_from:
        raise TrainingError("optim.distill_from: the teachers were trained on the pairs a fold leaves out, so the "
                            "folds would not be held out; cross-validate a recipe without distillation")
    data_dir = data_root(cfg, root)
    files = index_data(data_dir, [set_name]).sets[set_name]
    left_out = {p.partition("/")[2] for p in cfg.data.exclude_pairs if p.startswith(f"{set_name}/")}
    files = [f for f in files if f.name not in left_out]
    if len(files) < 2:
        raise TrainingError(f"{set_name!r} has {len(files)} pair(s) to leave out; cross-validation needs two or more")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result, folds = SetResult(), []
    for i, f in enumerate(files, 1):
        fcfg = fold_config(cfg, set_name, f.name)
        weights = fold_path(out, f.name)
        tag = f"[fold {i}/{len(files)} {f.name}]"
        if _finished(weights, fcfg):
            say(f"{tag} done before: {weights}")
        else:
            ckpt = weights.with_suffix(".ckpt")
            train(fcfg, weights, root=data_dir, resume=ckpt if ckpt.exists() else None, device=device,
                  command=command, progress=lambda line, tag=tag: say(f"{tag} {line}"))
        model = load_model(weights)
        pair = read_pair(f)
        pr: PairResult = score_pair(pair, predict_pair(model, pair.before, pair.after, pair.bands),
                                    model.info.threshold, min_area_m2)
        result.pairs.append(pr)
        result.resolution_m.append(pair.resolution_m)
        side = json.loads(weights.with_suffix(".json").read_text(encoding="utf-8"))
        folds.append({"pair": f.name, "weights": str(weights), "sha256": _sha256(weights),
                      "train_seconds": side.get("train_seconds"), "git_commit": side.get("git_commit")})
        say(f"{tag} pixel F1 {pr.pixel.f1:.3f}, {pr.objects.found}/{pr.objects.true} true objects found")
    report = {
        "protocol": PROTOCOL,
        "set": set_name,
        "recipe": cfg.as_dict(),
        "command": command,
        "data": str(data_dir),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rule": scoring_rule(cfg.threshold, min_area_m2),
        "sets": {set_name: result.as_dict()},
        "folds": folds,
    }
    tmp = out / "crossval.json.tmp"
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out / "crossval.json")
    return CrossvalResult(set_name=set_name, result=result, folds=folds, report=report)
