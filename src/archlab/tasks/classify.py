"""Classification: cross-entropy objective, accuracy / macro-F1 / confusion matrix, optimizer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.trainer.states import TrainerFn
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from archlab.errors import ArchlabError
from archlab.tasks.optim import build_optimizer, per_step_schedule


class NonFiniteLossError(ArchlabError):
    """The loss became NaN or infinite."""


class ClassificationTask(pl.LightningModule):
    """Trains any `model` that maps a batch of inputs to class logits.

    `hparams` is the run's whole resolved config as plain containers: it is saved inside
    every checkpoint (so a checkpoint alone can be evaluated) and loads with
    `torch.load(weights_only=True)`.
    """

    def __init__(
        self, model: nn.Module, num_classes: int, task: Mapping[str, Any], hparams: dict
    ) -> None:
        super().__init__()
        self.save_hyperparameters(hparams, logger=False)
        self.model = model
        self.task_cfg = task
        self.val_metrics = self._metrics("val", num_classes)
        self.test_metrics = self._metrics("test", num_classes)
        self.confusion = nn.ModuleDict(
            {
                "val": MulticlassConfusionMatrix(num_classes),
                "test": MulticlassConfusionMatrix(num_classes),
            }
        )
        self.final_confusion: dict[str, list[list[int]]] = {}
        self.skipped_batches = 0

    @staticmethod
    def _metrics(prefix: str, num_classes: int) -> MetricCollection:
        return MetricCollection(
            {
                "acc": MulticlassAccuracy(num_classes, average="micro"),
                "f1": MulticlassF1Score(num_classes, average="macro"),
            },
            prefix=f"{prefix}/",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], _: int
    ) -> torch.Tensor | None:
        x, y = batch
        loss = F.cross_entropy(self.model(x), y, label_smoothing=self.task_cfg["label_smoothing"])
        if not torch.isfinite(loss):
            return self._nonfinite(loss)
        # `self.log` costs ~0.7 ms, a quarter of a small model's step: call it only on the
        # steps whose value the logger writes (and the progress bar shows).
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train/loss", loss, prog_bar=True)
        return loss

    def _nonfinite(self, loss: torch.Tensor) -> None:
        """Skip the batch (returning None skips backward and step) or stop with a diagnosis."""
        if self.task_cfg["on_nonfinite"] == "skip":
            self.skipped_batches += 1
            self.log("train/skipped_batches", float(self.skipped_batches))
            return None
        callback = self.trainer.checkpoint_callback
        last = (callback.last_model_path or callback.best_model_path) if callback else ""
        causes = [
            f"a learning rate too high (task.optimizer.lr={self.task_cfg['optimizer']['lr']})"
        ]
        if str(self.trainer.precision).startswith("16"):
            causes.append(
                f"fp16 overflow (trainer.precision={self.trainer.precision}: try bf16-mixed)"
            )
        causes.append("extreme input values")
        raise NonFiniteLossError(
            f"The training loss became {loss.item()} at step {self.global_step} (epoch "
            f"{self.current_epoch}). Last good checkpoint: {last or 'none saved yet'}. Likely "
            f"causes: {', '.join(causes)}. To skip such batches instead, set "
            "task.on_nonfinite=skip."
        )

    def _eval_step(self, split: str, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Returns the logits (callbacks draw examples with their predictions)."""
        x, y = batch
        logits = self.model(x)
        # Re-validating the best checkpoint after fit must not add points to the curves.
        to_logger = self.logger is not None and self.trainer.state.fn != TrainerFn.VALIDATING
        loss = F.cross_entropy(logits, y)
        # sync_dist: the mean over every process's examples under DDP (a no-op on one).
        self.log(
            f"{split}/loss",
            loss,
            batch_size=len(y),
            logger=to_logger,
            prog_bar=True,
            sync_dist=True,
        )
        metrics = self.val_metrics if split == "val" else self.test_metrics
        metrics.update(logits, y)
        self.log_dict(metrics, batch_size=len(y), logger=to_logger, prog_bar=split == "val")
        if not self.trainer.sanity_checking:
            self.confusion[split].update(logits, y)
        return logits

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        return self._eval_step("val", batch)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        return self._eval_step("test", batch)

    def _record_confusion(self, split: str) -> None:
        matrix = self.confusion[split]
        if matrix.update_count:
            self.final_confusion[split] = matrix.compute().tolist()
        matrix.reset()

    def on_validation_epoch_end(self) -> None:
        self._record_confusion("val")

    def on_test_epoch_end(self) -> None:
        self._record_confusion("test")

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.model.named_parameters(), self.task_cfg["optimizer"])
        steps = int(self.trainer.estimated_stepping_batches)
        return per_step_schedule(optimizer, self.task_cfg, steps)
