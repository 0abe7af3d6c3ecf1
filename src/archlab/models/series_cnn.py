"""The 1-D CNNs that are the published baselines for time-series classification (Wang et al.,
"Time series classification from scratch with deep neural networks", 2017): no pooling inside,
global average pooling after, so the same weights read series of any length."""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn(width: int, out: int, kernel: int) -> list[nn.Module]:
    """A length-preserving convolution (zero padding split around even kernels), batch norm."""
    pad = nn.ConstantPad1d(((kernel - 1) // 2, kernel // 2), 0.0)
    return [pad, nn.Conv1d(width, out, kernel, bias=False), nn.BatchNorm1d(out)]


class FCN(nn.Module):
    """Three conv -> batch norm -> ReLU blocks: 128, 256, 128 channels, kernels 8, 5, 3.

    Input (B, T, F) -> features (B, T, 128).
    """

    def __init__(self, in_channels: int, channels=(128, 256, 128), kernels=(8, 5, 3)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for out, kernel in zip(channels, kernels, strict=True):
            layers += [*_conv_bn(width, out, kernel), nn.ReLU(inplace=True)]
            width = out
        self.blocks = nn.Sequential(*layers)
        self.out_dim = width

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.blocks(x.transpose(1, 2)).transpose(1, 2), mask


class ResidualBlock(nn.Module):
    """conv8 -> BN -> ReLU -> conv5 -> BN -> ReLU -> conv3 -> BN, plus a (projected) shortcut."""

    def __init__(self, width: int, out: int, kernels=(8, 5, 3)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        w = width
        for i, kernel in enumerate(kernels):
            layers += _conv_bn(w, out, kernel)
            if i < len(kernels) - 1:
                layers.append(nn.ReLU(inplace=True))
            w = out
        self.body = nn.Sequential(*layers)
        self.shortcut = nn.Sequential(*_conv_bn(width, out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet1D(nn.Module):
    """Three residual blocks of 64, 128, 128 channels. Input (B, T, F) -> (B, T, 128)."""

    def __init__(self, in_channels: int, channels=(64, 128, 128)) -> None:
        super().__init__()
        blocks = []
        width = in_channels
        for out in channels:
            blocks.append(ResidualBlock(width, out))
            width = out
        self.blocks = nn.Sequential(*blocks)
        self.out_dim = width

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.blocks(x.transpose(1, 2)).transpose(1, 2), mask
