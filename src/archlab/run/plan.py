"""`plan=true`: will this run fit? Parameter count and memory per device for the chosen
strategy and precision, printed before any training.

Weights, gradients and optimizer state follow from the parameter count, the precision and
how the strategy shards them. Activations are measured, not guessed: one training example
goes forward with autograd on the CPU and the tensors autograd saves for backward are
counted, then scaled to the per-process batch (halved for 16-bit precisions). On a GPU,
flash attention saves less than the CPU's attention does, so the figure is an upper bound
there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import nn

from archlab.config.budget import auto_batch_size
from archlab.config.schema import SHARDED
from archlab.data import build_datamodule
from archlab.distributed.strategies import processes_per_node
from archlab.models import build_classifier
from archlab.models.transformer import Block

GB = 1024**3
_HEADROOM = 0.9  # share of a device's memory a run may plan to use (fragmentation, buffers)
_CUDA_CONTEXT = 0.5 * GB  # CUDA context and kernels, per process


@dataclass(frozen=True)
class Activations:
    """Bytes autograd saves for one example: outside Transformer blocks, per block, and the
    blocks' inputs (all that activation checkpointing keeps of a block)."""

    outside: int
    blocks: tuple[int, ...]
    block_inputs: int

    def total(self, checkpointing: bool) -> int:
        if checkpointing and self.blocks:
            return self.outside + self.block_inputs + max(self.blocks)
        return self.outside + sum(self.blocks)


def measure_activations(model: nn.Module, example: torch.Tensor) -> Activations:
    """Saved-for-backward bytes of one forward pass of `example` (a batch of one)."""
    seen: set[tuple[int, int]] = set()
    counts = {"outside": 0, "inputs": 0}
    blocks: list[int] = []
    current: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key not in seen:
            seen.add(key)
            size = t.untyped_storage().nbytes()
            if current:
                blocks[current[-1]] += size
            else:
                counts["outside"] += size
        return t

    def enter(module: nn.Module, args: tuple) -> None:
        counts["inputs"] += args[0].numel() * args[0].element_size()
        blocks.append(0)
        current.append(len(blocks) - 1)

    def leave(*_: object) -> None:
        current.pop()

    hooks = []
    for module in model.modules():
        if isinstance(module, Block):
            hooks += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    return Activations(counts["outside"], tuple(blocks), counts["inputs"])


def _world(trainer: DictConfig) -> tuple[int, int]:
    """(processes per node, processes in all)."""
    per_node = max(processes_per_node(trainer), 1)
    return per_node, per_node * trainer.num_nodes


def state_bytes(params: int, cfg: DictConfig) -> dict[str, float]:
    """Per-device bytes of weights, gradients, optimizer state and buffers that strategies add."""
    trainer = cfg.trainer
    width = 2 if trainer.precision == "bf16-true" else 4
    optimizer = cfg.task.optimizer
    states = 2 if optimizer.name == "adamw" else int(optimizer.momentum > 0)
    parts = {
        "weights": params * width,
        "gradients": params * width,
        "optimizer state": params * width * states,
    }
    per_node, world = _world(trainer)
    divide: dict[str, int] = {}
    if trainer.strategy == "fsdp":
        fsdp = trainer.fsdp
        shards = {"FULL_SHARD": world, "HYBRID_SHARD": per_node, "NO_SHARD": 1}
        n = shards.get(fsdp.sharding_strategy, world)
        divide = {"weights": n, "gradients": n, "optimizer state": n}
        if fsdp.sharding_strategy == "SHARD_GRAD_OP":
            divide["weights"] = 1
        if fsdp.cpu_offload:
            parts = dict.fromkeys(parts, 0)
    elif trainer.strategy == "deepspeed":
        ds = trainer.deepspeed
        divide = {"optimizer state": world}
        if ds.stage >= 2:
            divide["gradients"] = world
        if ds.stage >= 3:
            divide["weights"] = world
        if ds.offload_optimizer:
            parts["optimizer state"] = 0
        if ds.offload_parameters:
            parts["weights"] = 0
    elif world > 1:
        parts["DDP gradient buckets"] = params * width
    for key, n in divide.items():
        parts[key] = parts[key] / n
    if trainer.precision in ("16-mixed", "bf16-mixed"):
        parts["16-bit weight casts"] = params * 2
    return parts


def device_memory(cfg: DictConfig) -> tuple[float | None, str]:
    """Bytes one process may use (None: unknown here), and where that figure comes from."""
    if cfg.plan_memory_gb is not None:
        return cfg.plan_memory_gb * GB, "plan_memory_gb"
    on_gpu = cfg.trainer.accelerator != "cpu" and torch.cuda.is_available()
    if on_gpu:
        props = torch.cuda.get_device_properties(0)
        return float(props.total_memory), props.name
    if cfg.trainer.accelerator in ("gpu", "cuda") or cfg.trainer.strategy in SHARDED:
        return None, "no GPU here: set plan_memory_gb=<the target GPU's memory in GB>"
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    per_node, _ = _world(cfg.trainer)
    return ram / per_node, f"this machine's RAM shared by {per_node} process(es)"


def _gb(n: float) -> str:
    return f"{n / GB:8.2f} GB" if n >= GB else f"{n / 1024**2:8.2f} MB"


def plan_report(cfg: DictConfig) -> tuple[str, bool]:
    """The plan as text, and whether the run fits (True where the device is unknown)."""
    datamodule = build_datamodule(cfg.data, seed=cfg.seed)
    datamodule.setup("fit")
    model = build_classifier(cfg.model, datamodule.spec, datamodule.num_classes)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    activations = measure_activations(model, datamodule.sample_inputs(1))
    trainer = cfg.trainer
    checkpointing = trainer.strategy == "fsdp" and trainer.fsdp.activation_checkpointing
    scale = 0.5 if trainer.precision in ("16-mixed", "bf16-mixed", "bf16-true") else 1.0
    parts = state_bytes(trainable, cfg)
    batch = cfg.data.batch_size or auto_batch_size(len(datamodule.datasets["train"]), cfg.budget)
    parts["activations"] = activations.total(checkpointing) * batch * scale
    on_gpu = trainer.accelerator != "cpu" and (
        torch.cuda.is_available() or trainer.accelerator in ("gpu", "cuda")
    )
    if on_gpu:
        parts["CUDA context"] = _CUDA_CONTEXT
    total = sum(parts.values())
    available, source = device_memory(cfg)
    fits = available is None or total <= _HEADROOM * available
    per_node, world = _world(trainer)
    lines = [
        f"plan: {cfg.model.name} on {cfg.data.modality} ({cfg.data.source}), "
        f"{params:,} parameters ({trainable:,} trainable)",
        f"  strategy={trainer.strategy} precision={trainer.precision} "
        f"processes={world} ({per_node} per node x {trainer.num_nodes} node(s)), "
        f"batch {batch} per process, global batch "
        f"{batch * world * trainer.accumulate_grad_batches}",
        "  memory per device (estimate):",
        *(f"    {name:<22}{_gb(size)}" for name, size in parts.items()),
        f"    {'total':<22}{_gb(total)}",
    ]
    if available is None:
        lines.append(f"  available: unknown ({source})")
        return "\n".join(lines), fits
    lines.append(f"  available: {_gb(available).strip()} ({source})")
    if fits:
        lines.append(f"  fits: {total / available:.1%} of the device's memory")
    else:
        lines.append(
            f"  WARNING: this will not fit: {_gb(total).strip()} needed, "
            f"{_gb(_HEADROOM * available).strip()} usable. Try a smaller data.batch_size with "
            "trainer.accumulate_grad_batches, precision=bf16-mixed, trainer=fsdp (shards "
            "weights, gradients and optimizer state) with "
            "trainer.fsdp.activation_checkpointing=true, or more devices."
        )
    return "\n".join(lines), fits


def print_plan(cfg: DictConfig) -> None:
    """Print the plan; training does not start."""
    text, _ = plan_report(cfg)
    print(text)
