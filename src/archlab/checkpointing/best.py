"""The best checkpoint, with ties going to the later one."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint


class LaterOnTies(ModelCheckpoint):
    """A metric that saturates (val accuracy reaching 1.0 on a few hundred examples) would
    otherwise keep the first epoch that reached it, mid-schedule at a high learning rate; a
    tie is replaced by the later checkpoint, trained longer at a lower learning rate."""

    def check_monitor_top_k(self, trainer: pl.Trainer, current: torch.Tensor | None = None) -> bool:
        if current is None or self.save_top_k == -1 or len(self.best_k_models) < self.save_top_k:
            return super().check_monitor_top_k(trainer, current)
        at_least = {"min": torch.le, "max": torch.ge}[self.mode]
        better_or_tied = at_least(current, self.best_k_models[self.kth_best_model_path])
        return trainer.strategy.reduce_boolean_decision(bool(better_or_tied))
