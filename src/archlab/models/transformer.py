"""Pre-norm Transformer encoder with attention through `scaled_dot_product_attention`."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SinusoidalPositions(nn.Module):
    """Fixed sine/cosine positions (Vaswani et al.), added to the input."""

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        freq = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_len, d_model)
        table[:, 0::2] = torch.sin(position * freq)
        table[:, 1::2] = torch.cos(position * freq[: d_model // 2])
        self.register_buffer("table", table, persistent=False)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        return x + self.table[start : start + x.shape[1]]


class LearnedPositions(nn.Module):
    """One trained vector per position, added to the input."""

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        self.table = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        return x + self.table.weight[start : start + x.shape[1]]


class SelfAttention(nn.Module):
    """Multi-head self-attention; one fused projection for q, k and v."""

    def __init__(self, d_model: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None,
        causal: bool,
        cache: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, d // self.num_heads).unbind(2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if cache is not None:  # decoding: the keys and values of earlier positions are kept
            if "k" in cache:
                if t != 1:
                    raise ValueError("a filled key/value cache takes one new position at a time")
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
                causal = False  # one query after all cached keys: it may see every one
            cache["k"], cache["v"] = k, v
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=causal and attn_mask is None,
        )
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, num_heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, ff_dim), nn.GELU(), nn.Linear(ff_dim, d_model), nn.Dropout(dropout)
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None,
        causal: bool,
        cache: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), attn_mask, causal, cache))
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """Input (B, T, d_model) -> features (B, T, d_model).

    `mask` (B, T) marks valid positions; padded keys are never attended to. `cache` (one dict
    per block, empty at first) keeps each block's keys and values for decoding: after the
    prompt, every call adds one position at the next index instead of re-reading the prefix.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        num_layers: int,
        ff_dim: int,
        dropout: float = 0.0,
        positional: str = "sinusoidal",
        max_len: int = 512,
        causal: bool = False,
    ) -> None:
        super().__init__()
        positions = {"sinusoidal": SinusoidalPositions, "learned": LearnedPositions}[positional]
        self.positions = positions(d_model, max_len)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(d_model, num_heads, ff_dim, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.causal = causal
        self.out_dim = d_model
        self.max_len = max_len

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: list[dict[str, torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        start = int(cache[0]["k"].shape[2]) if cache and "k" in cache[0] else 0
        attn_mask = None
        # Exporting traces one graph for every input: the mask is always applied then.
        if mask is not None and (torch.compiler.is_exporting() or not bool(mask.all())):
            attn_mask = mask[:, None, None, :]
            if self.causal:
                t = x.shape[1]
                attn_mask = attn_mask & torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        x = self.drop(self.positions(x, start))
        for i, block in enumerate(self.blocks):
            x = block(x, attn_mask, self.causal, cache[i] if cache is not None else None)
        return self.norm(x), mask
