"""Attention weights for pictures: self-attention of archlab's Transformer encoder (recomputed
from each layer's input, so the fast fused kernel stays in use for training) and the
cross-attention of an encoder-decoder."""

from __future__ import annotations

import math

import torch
from torch import nn

from archlab.models.transformer import SelfAttention


def _weights(module: SelfAttention, x: torch.Tensor, mask: torch.Tensor | None, causal: bool):
    b, t, d = x.shape
    h = module.num_heads
    q, k, _ = module.qkv(x).view(b, t, 3, h, d // h).unbind(2)
    scores = q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2) / math.sqrt(d // h)
    if mask is None and causal:
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1)


@torch.no_grad()
def self_attention_maps(network: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """(B, heads, T, T) per self-attention layer of `network` for inputs `x` (empty when the
    network has none)."""
    maps: list[torch.Tensor] = []

    def record(module: SelfAttention, args: tuple) -> None:
        maps.append(_weights(module, *args[:3]))  # (x, mask, causal); not a decoding cache

    hooks = [
        m.register_forward_pre_hook(record)
        for m in network.modules()
        if isinstance(m, SelfAttention)
    ]
    try:
        network(x)
    finally:
        for hook in hooks:
            hook.remove()
    return maps


@torch.no_grad()
def cross_attention_maps(
    seq2seq: nn.Module, source: torch.Tensor, target_in: torch.Tensor
) -> list[torch.Tensor]:
    """(B, heads, T, S') per decoder layer while reading `target_in` (teacher forcing); S' is
    the encoder's output length (shorter than the source's for the pooling CNN)."""
    decoder = seq2seq.decoder
    decoder.cross_attention(True)
    try:
        seq2seq(source, target_in)
        return decoder.attention_maps()
    finally:
        decoder.cross_attention(False)
