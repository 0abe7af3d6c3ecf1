"""Heads map backbone features to an objective's outputs."""

from __future__ import annotations

import torch
from torch import nn


def pool(features: torch.Tensor, mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """(B, T, D) -> (B, D) over valid positions (`last`: the last valid one), or (B, T*D)
    for `flatten`."""
    if how == "flatten":
        return features.flatten(1)
    if how == "last":
        if mask is None:
            return features[:, -1]
        last = (mask.sum(1) - 1).clamp(min=0)
        return features[torch.arange(len(features), device=features.device), last]
    if mask is None:
        return features.mean(1) if how == "mean" else features.amax(1)
    m = mask.unsqueeze(-1)
    if how == "mean":
        return (features * m).sum(1) / m.sum(1).clamp(min=1)
    return features.masked_fill(~m, torch.finfo(features.dtype).min).amax(1)


class ClassificationHead(nn.Module):
    """Pool, then fully connected layers (ReLU, dropout), then one logit per class."""

    def __init__(
        self, in_dim: int, num_classes: int, fc_dims: list[int], dropout: float, pooling: str
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for hidden in fc_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.mlp = nn.Sequential(*layers)
        self.pooling = pooling

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.mlp(pool(features, mask, self.pooling))
