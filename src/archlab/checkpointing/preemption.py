"""`last.ckpt` at every epoch end, every n steps, and on SIGTERM (a scheduler's preemption
notice) or SIGINT (Ctrl-C), so that a crash or a preemption costs at most n steps of work.

A signal only sets a flag; at the end of the current training batch (or, after an epoch's
last batch, at the end of that epoch, once it is validated), where the loop state is
consistent, `last.ckpt` is saved and `Preempted` is raised. Re-running the same command
resumes from that checkpoint. On SLURM, Lightning's SLURM environment handles SIGUSR1
(requeue) by itself.

Why not Lightning's `ModelCheckpoint(save_last=True, every_n_train_steps=n)`: one instance saves
every n steps or at epoch ends, not both, and none saves on a signal; here one callback writes
`last.ckpt` at all three points.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
    """Training stopped on a signal after saving its checkpoint."""

    def __init__(self, signum: int, step: int, checkpoint: Path) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name} at step {step}; saved {checkpoint}. "
            "Run the same command again to resume."
        )

    @property
    def exit_status(self) -> int:
        """128 + signal number, as a shell reports a process ended by that signal."""
        return 128 + self.signum


class LastCheckpoint(Callback):
    """Saves `checkpoint` at epoch ends, every `every_n_steps` optimizer steps (0: only at
    epoch ends) and on a signal."""

    def __init__(self, checkpoint: Path, every_n_steps: int) -> None:
        self.checkpoint = checkpoint
        self.every_n_steps = every_n_steps
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _note(self, signum: int, _: Any) -> None:
        self.received = signum

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for sig in _SIGNALS:
            self._previous[sig] = signal.signal(sig, self._note)

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _signalled(self, trainer: pl.Trainer) -> bool:
        stop = self.received is not None
        if trainer.world_size > 1:
            # Every rank must stop at the same point (saving is collective): stop when any
            # rank was signalled. One tiny all-reduce per step, only in multi-process runs.
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        return stop

    def _stop(self, trainer: pl.Trainer) -> None:
        trainer.save_checkpoint(self.checkpoint)
        raise Preempted(self.received or signal.SIGTERM, trainer.global_step, self.checkpoint)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._signalled(trainer):
            # After an epoch's last batch its validation is still to run, and a resumed fit
            # would skip it: stop at the epoch's end instead (see on_train_epoch_end).
            if batch_idx + 1 < trainer.num_training_batches:
                self._stop(trainer)
            return
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            trainer.save_checkpoint(self.checkpoint)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After validation (Lightning validates before this hook), so best.ckpt is current.
        if self._signalled(trainer):
            self._stop(trainer)
        trainer.save_checkpoint(self.checkpoint)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: Any, exception: BaseException) -> None:
        self._restore()
