"""What every archlab task shares: the run's config saved in its checkpoints, the optimizer
and per-step schedule, non-finite losses skipped or diagnosed, and eval metrics logged as the
mean over every process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn
from torch import nn

from archlab.errors import ArchlabError
from archlab.tasks.optim import make_optimizer, param_groups, per_step_schedule


class NonFiniteLossError(ArchlabError):
    """The loss became NaN or infinite."""


class ArchlabTask(pl.LightningModule):
    """Base of the tasks. `hparams` is the run's whole resolved config as plain containers:
    saved inside every checkpoint (so a checkpoint alone can be evaluated), it loads with
    `torch.load(weights_only=True)`."""

    def __init__(self, model: nn.Module, task: Mapping[str, Any], hparams: dict) -> None:
        super().__init__()
        self.save_hyperparameters(hparams, logger=False)
        self.model = model
        self.task_cfg = task
        self.skipped_batches = 0

    def training_loss(self, loss: torch.Tensor) -> torch.Tensor | None:
        """What `training_step` returns for `loss`: None skips backward and the step."""
        if not torch.isfinite(loss):
            return self._nonfinite(loss)
        # `self.log` costs ~0.7 ms, a quarter of a small model's step: call it only on the
        # steps whose value the logger writes (and the progress bar shows).
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train/loss", loss, prog_bar=True)
        return loss

    def _nonfinite(self, loss: torch.Tensor) -> None:
        """Skip the batch or stop with a diagnosis (`task.on_nonfinite`)."""
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

    @property
    def logs_eval_curves(self) -> bool:
        """Re-validating the best checkpoint after fit must not add points to the curves."""
        return self.logger is not None and self.trainer.state.fn != TrainerFn.VALIDATING

    def log_eval(self, name: str, value: Any, batch_size: int, prog_bar: bool = False) -> None:
        """An eval metric; sync_dist: the mean over every process's examples under DDP."""
        self.log(
            name,
            value,
            batch_size=batch_size,
            logger=self.logs_eval_curves,
            prog_bar=prog_bar,
            sync_dist=True,
        )

    def param_groups(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups (a group's own "lr" wins over the config's)."""
        return param_groups(self.model.named_parameters(), self.task_cfg["optimizer"])

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = make_optimizer(self.param_groups(), self.task_cfg["optimizer"])
        steps = int(self.trainer.estimated_stepping_batches)
        return per_step_schedule(optimizer, self.task_cfg, steps)

    def final_record(self) -> dict[str, Any]:
        """What the task adds to metrics.json after the final val/test."""
        return {}
