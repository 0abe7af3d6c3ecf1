"""Convolutional backbone: conv -> (batch norm) -> ReLU -> pool blocks; 2-D or 1-D."""

from __future__ import annotations

import torch
from torch import nn


class CNN(nn.Module):
    """Stacked conv blocks. Input (B, C, H, W) when `dims=2`, (B, T, C) when `dims=1`.

    Returns features (B, T', C_out) (spatial positions flattened for 2-D) and the mask of
    valid positions downsampled alongside, so padded text positions stay excluded.
    """

    def __init__(
        self,
        in_channels: int,
        channels: list[int],
        kernel_size: int = 3,
        batch_norm: bool = True,
        dropout: float = 0.0,
        dims: int = 2,
    ) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
        drop = nn.Dropout2d if dims == 2 else nn.Dropout1d
        pool = nn.MaxPool2d if dims == 2 else nn.MaxPool1d
        blocks: list[nn.Module] = []
        width = in_channels
        for out in channels:
            layers: list[nn.Module] = [
                conv(width, out, kernel_size, padding=kernel_size // 2, bias=not batch_norm)
            ]
            if batch_norm:
                layers.append(norm(out))
            layers.append(nn.ReLU(inplace=True))
            layers.append(pool(2, ceil_mode=True))
            if dropout > 0:
                layers.append(drop(dropout))
            blocks.append(nn.Sequential(*layers))
            width = out
        self.blocks = nn.Sequential(*blocks)
        self.dims = dims
        self.out_dim = width

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.dims == 2:
            return self.blocks(x).flatten(2).transpose(1, 2), None
        x = x.transpose(1, 2)
        if mask is None:
            return self.blocks(x).transpose(1, 2), None
        # Zero padded positions before every convolution and every pool, so that padding never
        # leaks into valid ones (batch norm makes a padded position's output non-zero).
        m = mask.unsqueeze(1).to(x.dtype)
        x = x * m
        for block in self.blocks:
            for layer in block:
                if isinstance(layer, nn.MaxPool1d):
                    x = x * m
                    m = nn.functional.max_pool1d(m, 2, ceil_mode=True)
                x = layer(x)
        return (x * m).transpose(1, 2), m.squeeze(1) > 0
