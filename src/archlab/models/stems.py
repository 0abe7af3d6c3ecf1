"""Stems turn one modality into what a backbone reads, plus a mask of valid positions."""

from __future__ import annotations

import torch
from torch import nn


class Identity(nn.Module):
    """Images for a 2-D CNN, numeric series for a 1-D CNN or an RNN: already in shape."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return x, None


class PatchEmbedding(nn.Module):
    """(B, C, H, W) -> (B, N, dim): non-overlapping patches, row-major, linearly projected."""

    def __init__(self, channels: int, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.proj(x).flatten(2).transpose(1, 2), None


class Projection(nn.Module):
    """(B, T, F) -> (B, T, dim) for numeric series."""

    def __init__(self, features: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(features, dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.proj(x), None


class TokenEmbedding(nn.Module):
    """(B, T) token ids -> (B, T, dim) and the mask of non-padding tokens."""

    def __init__(self, vocab_size: int, dim: int, pad_id: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.pad_id = pad_id

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embed(x), x != self.pad_id


class SeriesPatches(nn.Module):
    """(B, T, F) -> (B, ceil(T / patch), dim): non-overlapping windows of `patch` steps, each
    projected to one position (PatchTST, Nie et al. 2023), so a long series becomes a few
    tokens; the end is padded by repeating the last step."""

    def __init__(self, features: int, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Linear(features * patch, dim)
        self.patch = patch

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        b, t, f = x.shape
        pad = -t % self.patch
        if pad:
            x = torch.cat([x, x[:, -1:].expand(b, pad, f)], dim=1)
        return self.proj(x.reshape(b, -1, self.patch * f)), None
