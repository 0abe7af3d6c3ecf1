"""Training-time augmentation of whole batches with torch ops, on the batch's device.

Every random draw comes from a generator seeded by (seed, epoch, batch index, rank), never from
global RNG state: a run resumed mid-epoch draws exactly what the uninterrupted run drew, and
the augmentation does not shift the model's dropout masks. Inputs arrive standardised; image
colour jitter works on the raw pixel scale (un-standardised with the train statistics).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

_STRIDES = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)


def batch_generator(device: torch.device, seed: int, epoch: int, batch: int, rank: int):
    """A generator on `device` that is a function of (seed, epoch, batch, rank) only."""
    key = (seed + epoch * _STRIDES[0] + batch * _STRIDES[1] + rank * _STRIDES[2]) % 2**63
    return torch.Generator(device=device).manual_seed(key)


def _uniform(n: int, low: float, high: float, g: torch.Generator, device: torch.device):
    return low + (high - low) * torch.rand(n, generator=g, device=device)


def augment_images(
    x: torch.Tensor, cfg: Mapping[str, Any], g: torch.Generator, stats: Mapping[str, Any]
) -> torch.Tensor:
    """Random resized crop, horizontal flip, rotation and translation as one affine resample
    per image (areas outside the image become the channel mean); then brightness/contrast."""
    n, device = len(x), x.device
    scale = _uniform(n, cfg["crop_scale"], 1.0, g, device)
    ratio = torch.exp(_uniform(n, math.log(3 / 4), math.log(4 / 3), g, device))
    if cfg["crop_scale"] >= 1:
        ratio = torch.ones_like(ratio)
    w, h = (scale * ratio).sqrt().clamp(max=1), (scale / ratio).sqrt().clamp(max=1)
    cx = _uniform(n, -1, 1, g, device) * (1 - w)
    cy = _uniform(n, -1, 1, g, device) * (1 - h)
    shift = cfg["translate"] * 2
    cx = cx + _uniform(n, -shift, shift, g, device)
    cy = cy + _uniform(n, -shift, shift, g, device)
    angle = _uniform(n, -cfg["rotate"], cfg["rotate"], g, device) * math.pi / 180
    flip = torch.where(torch.rand(n, generator=g, device=device) < 0.5, -1.0, 1.0)
    if not cfg["flip"]:
        flip = torch.ones_like(flip)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack(
        [
            torch.stack([cos * w * flip, -sin * h, cx], 1),
            torch.stack([sin * w * flip, cos * h, cy], 1),
        ],
        1,
    )
    if cfg["crop_scale"] < 1 or cfg["flip"] or cfg["rotate"] or cfg["translate"]:
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg["color"]:
        mean = stats.get("mean", torch.zeros(x.shape[1])).to(device, x.dtype)[:, None, None]
        std = stats.get("std", torch.ones(x.shape[1])).to(device, x.dtype)[:, None, None]
        raw = x * std + mean
        bright = _uniform(n, 1 - cfg["color"], 1 + cfg["color"], g, device)[:, None, None, None]
        contrast = _uniform(n, 1 - cfg["color"], 1 + cfg["color"], g, device)[:, None, None, None]
        raw = raw * bright
        centre = raw.mean(dim=(1, 2, 3), keepdim=True)
        raw = (raw - centre) * contrast + centre
        x = (raw - mean) / std
    return x


def augment_series(x: torch.Tensor, cfg: Mapping[str, Any], g: torch.Generator) -> torch.Tensor:
    """Window crop stretched back to full length, per-series scaling, additive jitter."""
    n, t, f = x.shape
    device = x.device
    if cfg["crop"] < 1:
        length = max(2, round(cfg["crop"] * t))
        start = (torch.rand(n, generator=g, device=device) * (t - length + 1)).long()
        steps = start[:, None] + torch.arange(length, device=device)[None]
        window = torch.gather(x, 1, steps[:, :, None].expand(n, length, f))
        x = F.interpolate(window.transpose(1, 2), size=t, mode="linear", align_corners=True)
        x = x.transpose(1, 2)
    if cfg["scale"]:
        x = x * (1 + cfg["scale"] * torch.randn(n, 1, f, generator=g, device=device))
    if cfg["jitter"]:
        x = x + cfg["jitter"] * torch.randn(x.shape, generator=g, device=device)
    return x


def augment_tokens(
    ids: torch.Tensor, cfg: Mapping[str, Any], g: torch.Generator, pad_id: int, unk_id: int
) -> torch.Tensor:
    """Token dropout: each non-padding token becomes <unk> with probability `token_dropout`."""
    drop = torch.rand(ids.shape, generator=g, device=ids.device) < cfg["token_dropout"]
    return torch.where(drop & (ids != pad_id), torch.full_like(ids, unk_id), ids)


def augment_active(cfg: Mapping[str, Any] | None) -> bool:
    """Whether an `augment` section changes anything (every knob at its neutral value, or
    null before the budget resolves it: no)."""
    if not cfg:
        return False
    neutral = {"crop_scale": 1.0, "crop": 1.0}
    return any(value not in (None, neutral.get(key, 0)) for key, value in cfg.items())
