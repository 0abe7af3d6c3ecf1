"""Optimizer and learning-rate schedule from the `task.optimizer` / `task.scheduler` config."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from archlab.config.budget import capped_warmup


def param_groups(
    params: Iterable[tuple[str, nn.Parameter]], cfg: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """No weight decay on biases and norm/embedding-free 1-D parameters, as is customary."""
    weight_decay = cfg["weight_decay"]
    decay, no_decay = [], []
    for _, p in params:
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(groups: list[dict], cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The configured optimizer over parameter `groups` (a group's own "lr" wins)."""
    if cfg["name"] == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg["lr"], momentum=cfg["momentum"], nesterov=cfg["nesterov"]
        )
    # The fused kernel (one launch for all parameters) when every parameter lives on a GPU.
    params = [p for group in groups for p in group["params"]]
    fused = True if params and all(p.is_cuda for p in params) else None
    return torch.optim.AdamW(groups, lr=cfg["lr"], betas=tuple(cfg["betas"]), fused=fused)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warmup over `warmup_steps` (at most half of `total_steps`), then cosine decay
    to `min_lr_ratio` or constant."""
    warmup = capped_warmup(cfg["warmup_steps"], total_steps)
    floor = cfg["min_lr_ratio"]
    cosine = cfg["name"] == "cosine"

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if not cosine:
            return 1.0
        progress = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def per_step_schedule(
    optimizer: torch.optim.Optimizer, task_cfg: Mapping[str, Any], total_steps: int
) -> dict[str, Any]:
    """What a task's `configure_optimizers` returns: `optimizer` with the task's learning-rate
    schedule, stepped after every optimizer step."""
    scheduler = build_scheduler(optimizer, task_cfg["scheduler"], total_steps)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
