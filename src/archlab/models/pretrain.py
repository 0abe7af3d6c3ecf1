"""Per-position heads for self-supervised objectives, and the network that carries one.

Every backbone output position covers a *unit* of the input: one token or step for an RNN or
a Transformer on text and sequences, one patch for them on images, and a span of 2^blocks
steps (or a 2^blocks x 2^blocks patch) for the pooling CNN. A head predicts, for each
position, the values (or token logits) of its whole unit, laid out like the input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from archlab.models.build import build_body, series_patch
from archlab.models.heads import pool
from archlab.models.network import Network
from archlab.models.spec import ImageSpec, InputSpec, SequenceSpec, TextSpec

CAUSAL_OBJECTIVES = ("lm", "forecast")


def unit_span(cfg: Mapping[str, Any], spec: InputSpec) -> int:
    """Input positions (per side, for images) covered by one backbone output position."""
    if isinstance(spec, SequenceSpec):
        if cfg["name"] == "cnn":
            return 1 if cfg.get("series", "blocks") != "blocks" else 2 ** len(cfg["channels"])
        return series_patch(cfg, spec.length)
    if cfg["name"] == "cnn":
        return 2 ** len(cfg["channels"])
    return cfg["patch_size"] if isinstance(spec, ImageSpec) else 1


class SequenceOutputHead(nn.Module):
    """(B, P, D) -> (B, length, out): position p predicts steps p*span .. p*span + span - 1."""

    def __init__(self, in_dim: int, out: int, span: int, length: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, span * out)
        self.out, self.span, self.length = out, span, length

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, p, _ = features.shape
        return self.proj(features).view(b, p * self.span, self.out)[:, : self.length]


class ImageOutputHead(nn.Module):
    """(B, gh*gw, D) -> (B, C, H, W): each position predicts its span x span patch."""

    def __init__(self, in_dim: int, spec: ImageSpec, span: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, spec.channels * span * span)
        self.spec, self.span = spec, span
        self.grid = (-(-spec.height // span), -(-spec.width // span))

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        (gh, gw), s, c = self.grid, self.span, self.spec.channels
        y = self.proj(features).view(len(features), gh, gw, c, s, s)
        y = y.permute(0, 3, 1, 4, 2, 5).reshape(len(features), c, gh * s, gw * s)
        return y[:, :, : self.spec.height, : self.spec.width]


class ProjectionHead(nn.Module):
    """(B, P, D) -> (B, out): mean-pooled features through a 2-layer MLP (SimCLR's projection,
    which finetuning drops: the features before it transfer better)."""

    def __init__(self, in_dim: int, out: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, in_dim), nn.ReLU(inplace=True), nn.Linear(in_dim, out)
        )

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.mlp(pool(features, mask, "mean"))


def build_pretrainer(
    cfg: Mapping[str, Any], spec: InputSpec, objective: str, projection_dim: int = 64
) -> Network:
    """Stem and backbone as `build_classifier` makes them (so their weights transfer), with a
    per-position head for `objective` (a projection for `contrastive`); next-step objectives
    make a Transformer causal."""
    if objective in CAUSAL_OBJECTIVES and cfg["name"] == "transformer":
        cfg = {**cfg, "causal": True}
    stem, backbone, _ = build_body(cfg, spec)
    span = unit_span(cfg, spec)
    if objective == "contrastive":
        head: nn.Module = ProjectionHead(backbone.out_dim, projection_dim)
    elif isinstance(spec, ImageSpec):
        head = ImageOutputHead(backbone.out_dim, spec, span)
    elif isinstance(spec, TextSpec):
        head = SequenceOutputHead(backbone.out_dim, spec.vocab_size, span, spec.length)
    else:
        head = SequenceOutputHead(backbone.out_dim, spec.features, span, spec.length)
    return Network(stem, backbone, head)
