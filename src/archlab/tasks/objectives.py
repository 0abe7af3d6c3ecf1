"""Self-supervised losses: next token, masked tokens, next step, masked reconstruction,
contrastive views.

Each takes the network, an input batch and a generator (seeded per batch for validation and
test, so their losses compare across epochs) and returns (loss, token accuracy or None).
Masks are drawn per *unit* (see `archlab.models.pretrain`): the input positions one backbone
output position covers, so a masked unit is hidden from the model entirely.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

UNK_ID = 1  # archlab's tokenizers fix <unk> at 1: it stands in for masked tokens


def _unit_mask(batch: int, units: int, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """(batch, units) bool: exactly round(ratio * units) (at least one) masked units per row."""
    count = max(1, round(ratio * units))
    scores = torch.rand(batch, units, generator=generator)
    return scores.argsort(1) < count


def _expand(unit_mask: torch.Tensor, span: int, length: int) -> torch.Tensor:
    """(B, U) unit mask -> (B, length) position mask."""
    return unit_mask.repeat_interleave(span, 1)[:, :length]


def _token_accuracy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(-1) == target).float().mean()


def next_token(net: nn.Module, x: torch.Tensor, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    logits = net(x)[:, :-1]
    target = x[:, 1:]
    valid = target != pad_id
    return F.cross_entropy(logits[valid], target[valid]), _token_accuracy(
        logits[valid], target[valid]
    )


def masked_tokens(
    net: nn.Module, x: torch.Tensor, span: int, ratio: float, pad_id: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    units = -(-x.shape[1] // span)
    mask = _expand(_unit_mask(len(x), units, ratio, gen).to(x.device), span, x.shape[1])
    mask &= x != pad_id
    logits = net(x.masked_fill(mask, UNK_ID))
    if not bool(mask.any()):  # a batch of nothing but padding where it was masked
        return logits.sum() * 0.0, torch.tensor(0.0)
    return F.cross_entropy(logits[mask], x[mask]), _token_accuracy(logits[mask], x[mask])


def next_step(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, None]:
    return F.mse_loss(net(x)[:, :-1], x[:, 1:]), None


def masked_reconstruction(
    net: nn.Module, x: torch.Tensor, span: int, ratio: float, gen: torch.Generator
) -> tuple[torch.Tensor, None]:
    """MSE on the masked values only; masked values are set to 0 (the training mean)."""
    if x.ndim == 4:  # images (B, C, H, W): units are span x span patches
        b, _, h, w = x.shape
        gh, gw = -(-h // span), -(-w // span)
        units = _unit_mask(b, gh * gw, ratio, gen).to(x.device).view(b, gh, gw)
        mask = units.repeat_interleave(span, 1).repeat_interleave(span, 2)[:, :h, :w]
        mask = mask.unsqueeze(1).expand_as(x)
    else:  # sequences (B, T, F): units are spans of steps
        b, t, _ = x.shape
        mask = _expand(_unit_mask(b, -(-t // span), ratio, gen).to(x.device), span, t)
        mask = mask.unsqueeze(-1).expand_as(x)
    prediction = net(x.masked_fill(mask, 0.0))
    return F.mse_loss(prediction[mask], x[mask]), None


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random view of each standardised image (B, C, H, W), in batched torch ops: affine
    jitter (rotation +-15 deg, scale 0.85-1.1, shift +-12%; borders repeated), one erased
    square of a quarter of the side, and Gaussian noise (0.1 std)."""
    b, _, h, w = x.shape

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(b, generator=gen)

    angle, scale = uniform(-math.pi / 12, math.pi / 12), uniform(0.85, 1.1)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) / scale, -torch.sin(angle) / scale
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) / scale, torch.cos(angle) / scale
    theta[:, 0, 2], theta[:, 1, 2] = uniform(-0.25, 0.25), uniform(-0.25, 0.25)
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    view = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    side = max(1, h // 4)
    top = (torch.rand(b, generator=gen) * (h - side + 1)).long()
    left = (torch.rand(b, generator=gen) * (w - side + 1)).long()
    rows, cols = torch.arange(h)[None, :], torch.arange(w)[None, :]
    inside_rows = (rows >= top[:, None]) & (rows < top[:, None] + side)
    inside_cols = (cols >= left[:, None]) & (cols < left[:, None] + side)
    erased = (inside_rows[:, :, None] & inside_cols[:, None, :])[:, None].to(x.device)
    noise = torch.randn(x.shape, generator=gen).to(x) * 0.1
    return view.masked_fill(erased, 0.0) + noise


def contrastive(
    net: nn.Module, x: torch.Tensor, temperature: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """NT-Xent (SimCLR): each of 2B views must pick its twin among the other 2B - 1."""
    z = F.normalize(net(torch.cat([augment(x, gen), augment(x, gen)])), dim=1)
    logits = (z @ z.T / temperature).float()
    logits.fill_diagonal_(float("-inf"))
    b = len(x)
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(x.device)
    return F.cross_entropy(logits, target), _token_accuracy(logits, target)
