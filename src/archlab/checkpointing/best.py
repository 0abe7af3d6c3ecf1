"""The best checkpoint on val: the latest one within noise of the best score (a one-standard-
error rule), so that picking the maximum of many noisy validations does not keep an early,
under-trained checkpoint."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

_ROUNDING = 1e-6  # metrics arrive as float32: 179/180 must count as one example below 1.0


def noise_margin(peak: float, examples: int | None) -> float:
    """One standard error of a share (accuracy, F1) of `peak` measured on `examples`:
    sqrt(p (1 - p) / n), and at least one example's worth (1 / n). 0 when unknown."""
    if not examples or not 0.0 <= peak <= 1.0:
        return 0.0
    return max(math.sqrt(peak * (1.0 - peak) / examples), 1.0 / examples)


class LatestWithinNoise(ModelCheckpoint):
    """With `save_top_k=1`, a later checkpoint replaces the best when its score is within
    `noise_margin` of the best score seen so far (the peak), for shares monitored with
    mode=max; a tie replaces it for any metric. On 180 val examples, val accuracy 0.933 at
    epoch 9 and 0.922 from epoch 15 on differ by two examples: the later, annealed checkpoint
    is kept. A clearly worse epoch never replaces the best.

    `val_examples`: the size of the val split; None: read from the data module at set-up.
    """

    def __init__(self, *args: Any, val_examples: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.val_examples = val_examples
        self.peak: float | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        datasets = getattr(trainer.datamodule, "datasets", None)
        if self.val_examples is None and datasets and "val" in datasets:
            self.val_examples = len(datasets["val"])

    def check_monitor_top_k(self, trainer: pl.Trainer, current: torch.Tensor | None = None) -> bool:
        if current is None or self.save_top_k != 1 or not self.best_k_models:
            if current is not None and self.save_top_k == 1:
                self.peak = float(current)
            return super().check_monitor_top_k(trainer, current)
        value = float(current)
        if math.isnan(value):
            return super().check_monitor_top_k(trainer, current)
        peak = self.peak if self.peak is not None else float(self.best_model_score)
        if self.mode == "max":
            keep = value >= peak - noise_margin(peak, self.val_examples) - _ROUNDING
            self.peak = max(peak, value)
        else:
            keep = value <= peak
            self.peak = min(peak, value)
        return trainer.strategy.reduce_boolean_decision(keep)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "peak": self.peak}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.peak = state_dict.get("peak")
