"""A model is stem -> backbone -> head; `Network` wires the three together."""

from __future__ import annotations

import torch
from torch import nn


class Network(nn.Module):
    """Keeps the three parts as named children so that stages can swap the head later."""

    def __init__(self, stem: nn.Module, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, mask = self.stem(x)
        h, mask = self.backbone(h, mask)
        return self.head(h, mask)
