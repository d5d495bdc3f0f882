"""Self-training per pair before the nightly scan detects it (``soilwatch scan --self-train``).

The learned model is adapted to each pair of mosaics on its own, without labels, exactly as
``soilwatch train --before B --after A --self-train`` would (:func:`training.bureau.finetune` with
``self_train``): the model's confident predictions over the whole overlap become the targets of a short
fine-tune. Held out on the real sets this finds more sites with fewer false patches (models/weights/
MODEL_CARD.md, "Self-training in the product"), at more than twice a scan's time, and does nothing at
10 m, which ``auto`` leaves to the spectral baseline anyway.

The adapted weights go to ``<work_dir>/adapted/<job key>.pt`` with their sidecar (init, data files,
pseudo-label shares, seed), on the shared storage the units read from. A run that is killed after the
adaptation finds the file again and reuses it (its sha256 is checked against the sidecar; a file cut
short by the kill fails that check and is made again). A pair the adaptation cannot use (the spectral
baseline, a common area over the self-training memory cap, a model confident nowhere) is scanned with
the model as it is, and the job's message says why.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Adaptation", "adapt_to_pair"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Adaptation:
    """What the units run (a model name or weights file) and one line for the job's message."""

    model: str
    note: str
    adapted: bool


def _init_of(model: str) -> str | None:
    """The fine-tune's ``--init`` for a resolved model spec, or None when it is not a ChangeNet."""
    from detector.auto import LEARNED
    from training.bureau import INIT_SHIPPED

    if model == LEARNED:
        return INIT_SHIPPED
    if model.lower().endswith(".pt") and Path(model).is_file():
        return model
    return None


def adapt_to_pair(model: str, before: str, after: str, out: Path, *, steps: int = 100, seed: int = 0,
                  threads: int | None = None) -> Adaptation:  # fmt: skip
    """Self-train ``model`` (a resolved name or a .pt file) on one pair and return the weights to scan with."""
    from detector.errors import DetectorError
    from models.changenet import SHIPPED_WEIGHTS, file_sha256, load_weights
    from models.errors import WeightsError
    from training.bureau import INIT_SHIPPED, FinetuneConfig, finetune
    from training.errors import TrainingError

    init = _init_of(model)
    if init is None:
        return Adaptation(model, f"not self-trained: {model!r} is not a learned model", adapted=False)
    if out.is_file():
        try:
            _, meta = load_weights(out, require_sidecar=True)
        except WeightsError as exc:
            log.warning("adapted weights %s are unusable (%s): self-training again", out, exc)
        else:
            init_sha = file_sha256(SHIPPED_WEIGHTS if init == INIT_SHIPPED else init)
            made_as_asked = meta.get("seed") == seed and meta.get("train_steps") == steps
            if made_as_asked and (meta.get("init") or {}).get("sha256") == init_sha:  # not from an older model
                return Adaptation(str(out), f"self-trained on this pair: {out.name} (from an earlier try)", True)
    cfg = FinetuneConfig(self_train=True, steps=steps, seed=seed, threads=threads or max(1, os.cpu_count() or 1),
                         warmup=min(20, max(1, steps // 5)), log_every=max(1, min(25, steps)))  # fmt: skip
    command = f"soilwatch scan --self-train (init {init}, {steps} steps, seed {seed})"
    try:
        result = finetune(before, after, None, out, init=init, cfg=cfg, command=command)
    except (TrainingError, DetectorError) as exc:  # BureauDataError is a TrainingError
        log.warning("scanning %s against %s without self-training: %s", after, before, exc)
        return Adaptation(model, f"not self-trained: {exc}", adapted=False)
    pseudo = result.meta["data"]["pseudo_labels"] or {}
    note = (f"self-trained on this pair: {out.name}, {steps} steps in {result.seconds:.0f} s, pseudo-labels "
            f"{pseudo.get('change_share', 0):.2%} change / {pseudo.get('no_change_share', 0):.2%} no change")
    return Adaptation(str(out), note, adapted=True)
