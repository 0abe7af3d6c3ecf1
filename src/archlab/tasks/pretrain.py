"""Self-supervised pretraining: a per-position objective on inputs alone (labels unused)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn
from torch import nn

from archlab.models.spec import InputSpec, TextSpec
from archlab.tasks import objectives
from archlab.tasks.classify import ClassificationTask
from archlab.tasks.optim import build_optimizer, per_step_schedule


class PretrainTask(pl.LightningModule):
    """Trains `model` (stem -> backbone -> per-position head) with `task.name`'s objective.

    Logs `{split}/loss` (and `{split}/acc`, the token accuracy, for lm and mlm); the best
    checkpoint is the one with the lowest val/loss. Like `ClassificationTask`, it saves the
    run's whole config in every checkpoint.
    """

    def __init__(
        self,
        model: nn.Module,
        spec: InputSpec,
        span: int,
        task: Mapping[str, Any],
        hparams: dict,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(hparams, logger=False)
        self.model = model
        self.task_cfg = task
        self.span = span
        self.pad_id = spec.pad_id if isinstance(spec, TextSpec) else 0
        self.final_confusion: dict[str, list[list[int]]] = {}
        self.skipped_batches = 0

    def objective(
        self, x: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        name = self.task_cfg["name"]
        if name == "lm":
            return objectives.next_token(self.model, x, self.pad_id)
        if name == "forecast":
            return objectives.next_step(self.model, x)
        ratio = self.task_cfg["mask_ratio"]
        if name == "mlm":
            return objectives.masked_tokens(self.model, x, self.span, ratio, self.pad_id, generator)
        return objectives.masked_reconstruction(self.model, x, self.span, ratio, generator)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], _: int
    ) -> torch.Tensor | None:
        # Masks follow (seed, step), so that a resumed run draws the same ones.
        seed = int(self.hparams.get("seed", 0)) * 1_000_003 + self.global_step
        loss, _acc = self.objective(batch[0], torch.Generator().manual_seed(seed))
        if not torch.isfinite(loss):
            return ClassificationTask._nonfinite(self, loss)  # type: ignore[arg-type]
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train/loss", loss, prog_bar=True)
        return loss

    def _eval_step(self, split: str, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> None:
        x = batch[0]
        loss, acc = self.objective(x, torch.Generator().manual_seed(index))
        to_logger = self.logger is not None and self.trainer.state.fn != TrainerFn.VALIDATING
        self.log(f"{split}/loss", loss, batch_size=len(x), logger=to_logger, prog_bar=True)
        if acc is not None:
            self.log(f"{split}/acc", acc, batch_size=len(x), logger=to_logger)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> None:
        self._eval_step("val", batch, index)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> None:
        self._eval_step("test", batch, index)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.model.named_parameters(), self.task_cfg["optimizer"])
        steps = int(self.trainer.estimated_stepping_batches)
        return per_step_schedule(optimizer, self.task_cfg, steps)
