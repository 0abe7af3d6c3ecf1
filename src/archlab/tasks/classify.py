"""Classification: cross-entropy objective, accuracy / macro-F1 / confusion matrix, optimizer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from archlab.tasks.base import ArchlabTask


class ClassificationTask(ArchlabTask):
    """Trains any `model` that maps a batch of inputs to class logits."""

    def __init__(
        self, model: nn.Module, num_classes: int, task: Mapping[str, Any], hparams: dict
    ) -> None:
        super().__init__(model, task, hparams)
        self.label_smoothing = float(task["label_smoothing"])  # a config lookup per step costs
        self.val_metrics = self._metrics("val", num_classes)
        self.test_metrics = self._metrics("test", num_classes)
        self.confusion = nn.ModuleDict(
            {
                "val": MulticlassConfusionMatrix(num_classes),
                "test": MulticlassConfusionMatrix(num_classes),
            }
        )
        self.final_confusion: dict[str, list[list[int]]] = {}

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
        loss = F.cross_entropy(self.model(x), y, label_smoothing=self.label_smoothing)
        return self.training_loss(loss)

    def _eval_step(self, split: str, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Returns the logits (callbacks draw examples with their predictions)."""
        x, y = batch
        logits = self.model(x)
        self.log_eval(f"{split}/loss", F.cross_entropy(logits, y), len(y), prog_bar=True)
        metrics = self.val_metrics if split == "val" else self.test_metrics
        metrics.update(logits, y)
        # Metric objects gather their state over processes themselves.
        self.log_dict(
            metrics, batch_size=len(y), logger=self.logs_eval_curves, prog_bar=split == "val"
        )
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

    def final_record(self) -> dict[str, Any]:
        return {"confusion_matrix": self.final_confusion}
