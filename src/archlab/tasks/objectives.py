"""Self-supervised losses: next token, masked tokens, next step, masked reconstruction.

Each takes the network, an input batch and a generator (seeded per batch for validation and
test, so their losses compare across epochs) and returns (loss, token accuracy or None).
Masks are drawn per *unit* (see `archlab.models.pretrain`): the input positions one backbone
output position covers, so a masked unit is hidden from the model entirely.
"""

from __future__ import annotations

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
