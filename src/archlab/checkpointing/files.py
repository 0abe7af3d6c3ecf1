"""Finding and safely loading a run's checkpoints."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch

from archlab.errors import CheckpointError

CHECKPOINT_DIR = "checkpoints"


def find_checkpoint(path: Path) -> Path:
    """`path` itself if it is a file; for a run directory its best checkpoint, else its last."""
    if not path.exists():
        raise CheckpointError(f"{path} does not exist: give a run directory or a .ckpt file.")
    if path.is_file():
        return path
    metrics = path / "metrics.json"
    if metrics.is_file():
        try:
            best = json.loads(metrics.read_text()).get("best_checkpoint")
        except (json.JSONDecodeError, UnicodeDecodeError):
            best = None
        if best and (path / best).is_file():
            return path / best
    for name in ("best.ckpt", "last.ckpt"):
        if (path / CHECKPOINT_DIR / name).is_file():
            return path / CHECKPOINT_DIR / name
    raise CheckpointError(
        f"{path} holds no checkpoint ({CHECKPOINT_DIR}/best.ckpt or last.ckpt): "
        "is it a run directory of archlab-train?"
    )


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load with `weights_only=True`: tensors and plain containers only, never arbitrary code."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as ex:
        first = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise CheckpointError(
            f"Cannot load checkpoint {path}: {first[:300]}. It is corrupt, truncated, or holds "
            "objects other than tensors and plain data (refused for safety)."
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not an archlab/Lightning checkpoint (no state_dict).")
    if not isinstance(checkpoint.get("hyper_parameters"), dict):
        raise CheckpointError(f"{path} carries no archlab config (hyper_parameters).")
    return checkpoint


def load_weights(module: torch.nn.Module, state_dict: dict[str, Any], path: Path) -> None:
    """`module.load_state_dict(state_dict)`, or a CheckpointError naming the first parameter
    (and shapes) that does not fit."""
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as ex:
        details = [line.strip() for line in str(ex).splitlines()[1:] if line.strip()]
        raise CheckpointError(
            f"The weights in {path} do not fit the model its config describes: "
            f"{details[0] if details else ex}"
        ) from None
