"""Self-supervised pretraining: a per-position objective on inputs alone (labels unused)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from archlab.models.spec import InputSpec, TextSpec
from archlab.tasks import objectives
from archlab.tasks.base import ArchlabTask


class PretrainTask(ArchlabTask):
    """Trains `model` (stem -> backbone -> per-position head) with `task.name`'s objective.

    Logs `{split}/loss` (and `{split}/acc`: the token accuracy for lm and mlm, the share of
    views whose twin is their nearest neighbour for contrastive); the best checkpoint is the
    one with the lowest val/loss.
    """

    def __init__(
        self,
        model: nn.Module,
        spec: InputSpec,
        span: int,
        task: Mapping[str, Any],
        hparams: dict,
    ) -> None:
        super().__init__(model, task, hparams)
        self.span = span
        self.pad_id = spec.pad_id if isinstance(spec, TextSpec) else 0

    def objective(
        self, x: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        name = self.task_cfg["name"]
        if name == "lm":
            return objectives.next_token(self.model, x, self.pad_id)
        if name == "forecast":
            return objectives.next_step(self.model, x)
        if name == "contrastive":
            return objectives.contrastive(self.model, x, self.task_cfg["temperature"], generator)
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
        return self.training_loss(loss)

    def _eval_step(self, split: str, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> None:
        x = batch[0]
        loss, acc = self.objective(x, torch.Generator().manual_seed(index))
        self.log_eval(f"{split}/loss", loss, len(x), prog_bar=True)
        if acc is not None:
            self.log_eval(f"{split}/acc", acc, len(x))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> None:
        self._eval_step("val", batch, index)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> None:
        self._eval_step("test", batch, index)
