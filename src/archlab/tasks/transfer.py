"""Weight transfer: start a model's stem and backbone from a checkpoint, keep its own head.

The checkpoint may come from any archlab run (a pretraining objective or a classifier): only
`stem.*` and `backbone.*` are taken; the head, shaped for another objective, is left out. The
report names what was loaded, what the model kept as initialised (missing) and what the
checkpoint had that the model has not (unexpected), by parameter group (module path).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archlab.checkpointing.files import find_checkpoint, load_checkpoint
from archlab.errors import CheckpointError

PRETRAINED_PARTS = ("stem.", "backbone.")
_TASK_PREFIX = "model."  # where the LightningModule keeps its network


def _groups(keys: list[str]) -> list[str]:
    """Module paths of parameter names: `backbone.blocks.0.attn.qkv.weight` -> `...attn.qkv`."""
    return sorted({k.rsplit(".", 1)[0] for k in keys})


@dataclass
class TransferReport:
    """What `transfer_weights` did, by parameter group."""

    checkpoint: str
    loaded: list[str]
    missing: list[str]
    unexpected: list[str]
    head_left_out: list[str]

    def lines(self) -> list[str]:
        out = [f"transfer from {self.checkpoint}:"]
        for name in ("loaded", "missing", "unexpected", "head_left_out"):
            groups = getattr(self, name)
            out.append(f"  {name} ({len(groups)}): {', '.join(groups) or '-'}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_source(init_from: str) -> tuple[Path, dict[str, Any]]:
    """The checkpoint `init_from` names (a run directory resolves to its best checkpoint)."""
    path = find_checkpoint(Path(init_from).expanduser())
    return path, load_checkpoint(path)


def input_transforms(checkpoint: dict[str, Any], datamodule_name: str) -> dict[str, Any]:
    """The tokenizer / normalisation statistics the checkpoint's model was trained with (not
    its classes): a transferred embedding is only meaningful with the same token ids."""
    state = checkpoint.get(datamodule_name) or {}
    return {k: v for k, v in state.items() if k not in ("classes", "input_shape")}


def transfer_weights(
    network: nn.Module, checkpoint: dict[str, Any], source: Path
) -> TransferReport:
    """Copy the checkpoint's stem and backbone into `network`; CheckpointError on a shape
    mismatch, naming the parameter and both shapes."""
    offered = {
        k[len(_TASK_PREFIX) :]: v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith(_TASK_PREFIX)
    }
    if not offered:
        raise CheckpointError(f"{source} holds no archlab model weights (no 'model.*' entries).")
    target = {k: v for k, v in network.state_dict().items() if k.startswith(PRETRAINED_PARTS)}
    source_parts = {k: v for k, v in offered.items() if k.startswith(PRETRAINED_PARTS)}
    for name in sorted(target.keys() & source_parts.keys()):
        have, want = tuple(source_parts[name].shape), tuple(target[name].shape)
        if have != want:
            raise CheckpointError(
                f"Cannot transfer '{name}' from {source}: the checkpoint has shape {have}, the "
                f"model expects {want}. Use the same model settings (and data vocabulary / "
                "features) as the pretrained run."
            )
    loaded = sorted(target.keys() & source_parts.keys())
    if not loaded:
        raise CheckpointError(
            f"{source} shares no stem or backbone parameter with this model: was it trained "
            "with another model= architecture?"
        )
    with torch.no_grad():
        network.load_state_dict({k: source_parts[k] for k in loaded}, strict=False)
    return TransferReport(
        checkpoint=str(source),
        loaded=_groups(loaded),
        missing=_groups(sorted(target.keys() - source_parts.keys())),
        unexpected=_groups(sorted(source_parts.keys() - target.keys())),
        head_left_out=_groups(sorted(k for k in offered if not k.startswith(PRETRAINED_PARTS))),
    )
