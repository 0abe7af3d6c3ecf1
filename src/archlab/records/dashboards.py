"""TensorBoard pictures of a classifier's final evaluation: the confusion matrix, and examples
with their predictions (misclassified ones first), for the val and test splits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.loggers import Logger, TensorBoardLogger
from pytorch_lightning.trainer.states import TrainerFn

from archlab.records import figures

MAX_EXAMPLES = 16


class PredictionDashboards(Callback):
    """Draws after the evaluation of the chosen checkpoint (not after every epoch)."""

    def __init__(self) -> None:
        self.wrong: list[tuple[torch.Tensor, int, int]] = []
        self.right: list[tuple[torch.Tensor, int, int]] = []

    @staticmethod
    def _active(trainer: Trainer) -> bool:
        final = trainer.state.fn in (TrainerFn.VALIDATING, TrainerFn.TESTING)
        return final and tensorboard_of(trainer.loggers) is not None

    def _collect(self, trainer: Trainer, logits: Any, batch: Any) -> None:
        if not self._active(trainer) or not isinstance(logits, torch.Tensor):
            return
        x, y = batch
        predicted = logits.argmax(-1)
        for i in range(len(y)):
            bucket = self.right if predicted[i] == y[i] else self.wrong
            if len(bucket) < MAX_EXAMPLES:
                # A copy: a view would keep its whole batch (a loader worker's shared memory) alive.
                bucket.append((x[i].detach().cpu().clone(), int(y[i]), int(predicted[i])))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, *_: Any) -> None:
        self._collect(trainer, outputs, batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, *_: Any) -> None:
        self._collect(trainer, outputs, batch)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._draw(trainer, pl_module, "val")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._draw(trainer, pl_module, "test")

    def _draw(self, trainer: Trainer, pl_module: LightningModule, split: str) -> None:
        examples = (self.wrong + self.right)[:MAX_EXAMPLES]
        self.wrong, self.right = [], []
        if not self._active(trainer) or not trainer.is_global_zero:
            return
        writer = tensorboard_of(trainer.loggers).experiment
        step = trainer.global_step
        datamodule = trainer.datamodule
        classes = datamodule.classes
        matrix = getattr(pl_module, "final_confusion", {}).get(split)
        if matrix:
            title = f"{split} confusion (rows: true class)"
            figure = figures.confusion_figure(matrix, classes, title)
            writer.add_figure(f"confusion/{split}", figure, step)
        if not examples:
            return
        modality = datamodule.cfg["modality"]
        inputs = torch.stack([x for x, _, _ in examples])
        inputs = inputs.numpy() if modality == "text" else inputs.float().numpy()
        true = [classes[t] for _, t, _ in examples]
        predicted = [classes[p] for _, _, p in examples]
        if modality == "image":
            figure = figures.image_grid(inputs, true, predicted)
            writer.add_figure(f"examples/{split}", figure, step)
        elif modality == "sequence":
            figure = figures.series_grid(inputs, true, predicted)
            writer.add_figure(f"examples/{split}", figure, step)
        else:
            texts = [datamodule.tokenizer.decode(ids.tolist()) for ids in inputs]
            writer.add_text(f"examples/{split}", figures.text_table(texts, true, predicted), step)
        writer.flush()


def tensorboard_of(loggers: Iterable[Logger]) -> TensorBoardLogger | None:
    """The TensorBoard logger among a run's loggers (`logger=[tensorboard,mlflow]`)."""
    return next((lg for lg in loggers if isinstance(lg, TensorBoardLogger)), None)


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat |= _flat(value, f"{prefix}{key}/")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def hparam_order(hparams: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """The run's config flattened to `a/b/c` keys, those its command line set first (in the
    order given): in a sweep they are the ones that vary, so they lead TensorBoard's table.
    A config-group choice (`model=rnn`) brings the group's selector (`model/name`)."""
    flat = _flat(hparams)
    first = []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~").replace(".", "/")
        group = [k for k in (f"{key}/name", f"{key}/modality") if k in flat]
        first += [k for k in [key, *group] if k in flat and k not in first]
    return {k: flat[k] for k in first} | {k: v for k, v in flat.items() if k not in first}


def log_hparams(
    loggers: Iterable[Logger],
    hparams: Mapping[str, Any],
    metrics: Mapping[str, float],
    cost: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
) -> None:
    """Fill TensorBoard's HParams tab: the run's config beside its final metrics and cost,
    the keys set on the command line (`overrides`) first.

    The metrics are logged under `final/` so they never add points to the training curves;
    the cost's numbers under `cost/`.
    """
    logger = tensorboard_of(loggers)
    if logger is not None:
        numbers = {f"final/{k}": v for k, v in metrics.items()}
        numbers |= {
            f"cost/{k}": float(v)
            for k, v in (cost or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        logger.log_hyperparams(hparam_order(hparams, overrides), numbers)
        logger.finalize("success")
