"""Sampling continuations from a next-token model: temperature, top-k, top-p, a seeded
generator (same seed, same tokens), and incremental decoding.

Takes a plain `nn.Module` and token ids, so any stage can call it (e.g. to log sample
continuations during LM pretraining). An archlab `Network` with a Transformer backbone decodes
with a key/value cache (each new token costs one position), one with an RNN backbone carries
its hidden state; any other module re-reads the whole prefix at every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from archlab.models.rnn import RNN
from archlab.models.transformer import Transformer


@dataclass(frozen=True)
class Sampling:
    """How the next token is drawn; temperature 0 is greedy (argmax)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None


def next_token(
    logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None
) -> torch.Tensor:
    """(B, V) logits -> (B,) token ids."""
    if sampling.temperature <= 0:
        return logits.argmax(-1)
    logits = logits.float() / sampling.temperature
    if sampling.top_k:
        kth = logits.topk(min(sampling.top_k, logits.shape[-1]), -1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p is not None and sampling.top_p < 1:
        ordered, order = logits.sort(-1, descending=True)
        cumulative = ordered.softmax(-1).cumsum(-1)
        drop = cumulative - ordered.softmax(-1) >= sampling.top_p  # keeps the first token
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))
    probs = logits.softmax(-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logits.device)


class _Decoder:
    """Logits of the next position after `start(ids)`, then after each `step(token)`."""

    def __init__(self, model: nn.Module, use_cache: bool) -> None:
        self.model = model
        parts = all(hasattr(model, name) for name in ("stem", "backbone", "head"))
        backbone = model.backbone if parts else None
        self.kind = "prefix"
        if use_cache and isinstance(backbone, Transformer):
            self.kind = "kv"
        elif use_cache and isinstance(backbone, RNN):
            self.kind = "rnn"
        self.parts = parts
        self.ids: torch.Tensor | None = None
        self.state: Any = None

    def _last(self, h: torch.Tensor) -> torch.Tensor:
        return self.model.head(h[:, -1:], None)[:, -1]

    def _run(self, ids: torch.Tensor) -> torch.Tensor:
        if self.kind == "kv":
            h, _ = self.model.stem(ids)
            h, _ = self.model.backbone(h, None, cache=self.state)
            return self._last(h)
        if self.kind == "rnn":
            h, _ = self.model.stem(ids)
            h, self.state = self.model.backbone.rnn(h, self.state)
            return self._last(h)
        if not self.parts:
            return self.model(self.ids)[:, -1]
        h, mask = self.model.stem(self.ids)
        h, _ = self.model.backbone(h, mask)
        return self._last(h)

    def start(self, ids: torch.Tensor) -> torch.Tensor:
        self.ids = ids
        if self.kind == "kv":
            self.state = [{} for _ in self.model.backbone.blocks]
        return self._run(ids)

    def step(self, token: torch.Tensor) -> torch.Tensor:
        self.ids = torch.cat([self.ids, token[:, None]], 1)
        return self._run(token[:, None])


def context_length(model: nn.Module) -> int | None:
    """The most positions `model` can read (a Transformer's position table), else None."""
    backbone = getattr(model, "backbone", None)
    return int(backbone.max_len) if isinstance(backbone, Transformer) else None


@torch.no_grad()
def generate(
    model: nn.Module,
    prompt: torch.Tensor,
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    generator: torch.Generator | None = None,
    stop_id: int | None = None,
    use_cache: bool = True,
    pad_id: int | None = 0,
) -> torch.Tensor:
    """(B, T) prompt ids (no padding) -> (B, T + n) with n <= max_new_tokens new tokens.

    Stops early when every row has drawn `stop_id` (rows that drew it keep drawing it) or at the
    model's context length. `pad_id` is never drawn: no model learns to write it, and a stem
    would read it as padding. The model is put in eval mode for the call and restored after.
    """
    was_training = model.training
    model.eval()
    try:
        limit = context_length(model)
        steps = max_new_tokens if limit is None else min(max_new_tokens, limit - prompt.shape[1])
        decoder = _Decoder(model, use_cache)
        out = prompt
        if steps <= 0:
            return out
        logits = decoder.start(prompt)
        done = torch.zeros(len(prompt), dtype=torch.bool, device=prompt.device)
        for i in range(steps):
            if pad_id is not None:
                logits = logits.clone()
                logits[:, pad_id] = float("-inf")
            token = next_token(logits, sampling, generator)
            if stop_id is not None:
                token = token.masked_fill(done, stop_id)
                done |= token == stop_id
            out = torch.cat([out, token[:, None]], 1)
            if (stop_id is not None and bool(done.all())) or i == steps - 1:
                break
            logits = decoder.step(token)
        return out
    finally:
        model.train(was_training)
