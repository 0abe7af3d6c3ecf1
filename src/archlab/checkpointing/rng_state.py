"""The global RNG states travel in checkpoints, so a resumed run draws the same dropout masks
(and any other random numbers) as the uninterrupted run would have.

Lightning's Trainer checkpoints carry no RNG state, and Fabric's (private) collection holds
numpy objects that `torch.load(weights_only=True)` refuses: hence this module."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.states import TrainerFn

RNG_KEY = "archlab_rng"


def rng_states() -> dict[str, Any]:
    """python, numpy and torch (CPU, and CUDA once initialised) RNG states, as tensors and
    plain lists/numbers only, so checkpoints still load with `torch.load(weights_only=True)`."""
    version, internal, gauss_next = random.getstate()
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    states: dict[str, Any] = {
        "python": [version, list(internal), gauss_next],
        "numpy": [keys.tolist(), int(pos), int(has_gauss), float(cached_gaussian)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Undo `rng_states`; CUDA states apply to as many devices as both runs have."""
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    keys, pos, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state(
        ("MT19937", np.array(keys, dtype=np.uint32), pos, has_gauss, cached_gaussian)
    )
    torch.set_rng_state(states["torch"])
    if torch.cuda.is_available():
        for device, state in enumerate(states.get("cuda", [])[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, device)


class RNGStateCallback(Callback):
    """Saves the RNG states with each checkpoint; restores them when a fit resumes.

    Restoring happens in `on_train_start`, the last hook before the first resumed step, not
    on load: whatever runs in between (strategy and optimizer setup, `setup` hooks, creating
    loader iterators) would otherwise shift the stream if it ever drew random numbers.
    Under DDP only rank 0's states are saved (it writes the checkpoint) and every rank gets
    them back: exact when the ranks were seeded alike, as `seed_everything` does.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[RNG_KEY] = rng_states()

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # validate/test from a checkpoint must not rewind the RNG of a later fit
        if trainer.state.fn == TrainerFn.FITTING:
            self._pending = checkpoint.get(RNG_KEY)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is not None:
            set_rng_states(self._pending)
            self._pending = None
