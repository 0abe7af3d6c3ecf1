"""Checkpoint files written whole, so a kill (or a power loss) during a save keeps the previous one.

Lightning's own save is a transaction through fsspec, whose temporary file may live on another
file system (then the final move is a copy, not an atomic rename) and is not fsynced; archlab's
temporary file sits in the checkpoint's own folder and reaches the disk before the rename."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from archlab.atomic import write_atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with `archlab.atomic.write_atomic` underneath."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        write_atomic(Path(path), lambda f: torch.save(checkpoint, f), binary=True)
