"""Greedy and beam search over any model with `start` / `step` / `advance` (see
`archlab.models.seq2seq.Seq2Seq`): plain PyTorch, batched over sources."""

from __future__ import annotations

import torch
from torch import nn


def _reorder(state: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v.index_select(0, index) for k, v in state.items()}


@torch.no_grad()
def greedy(
    model: nn.Module, source: torch.Tensor, bos: int, eos: int, max_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S) sources -> (B, <= max_len) ids (<eos> included, then padding 0) and the total
    log-probability of each."""
    state = model.start(source, bos)
    done = torch.zeros(len(source), dtype=torch.bool, device=source.device)
    score = torch.zeros(len(source), device=source.device)
    out = []
    for _ in range(max_len):
        logits, state = model.step(state)
        logp = logits.float().log_softmax(-1)
        token = logp.argmax(-1)
        score += torch.where(done, 0.0, logp.gather(1, token[:, None]).squeeze(1))
        token = token.masked_fill(done, 0)
        out.append(token)
        done |= token == eos
        if bool(done.all()):
            break
        state = model.advance(state, token)
    return torch.stack(out, 1), score


def length_penalty(length: torch.Tensor, alpha: float) -> torch.Tensor:
    """GNMT's ((5 + length) / 6) ** alpha: alpha 0 ranks by total log-probability."""
    return ((5.0 + length.float()) / 6.0) ** alpha


@torch.no_grad()
def beam_search(
    model: nn.Module,
    source: torch.Tensor,
    bos: int,
    eos: int,
    max_len: int,
    beam_size: int,
    alpha: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The hypothesis of best `log p / length_penalty` among `beam_size` kept per source
    (finished ones compete as they are). Returns ids (B, <= max_len) as `greedy` does, and
    each one's total log-probability."""
    b, k = len(source), beam_size
    device = source.device
    state = model.start(source, bos)
    state = _reorder(state, torch.arange(b, device=device).repeat_interleave(k))
    # Only the first copy of each source is live at first, so the k beams start distinct.
    score = torch.full((b, k), float("-inf"), device=device)
    score[:, 0] = 0.0
    tokens = torch.zeros(b, k, 0, dtype=torch.long, device=device)
    finished = torch.zeros(b, k, dtype=torch.bool, device=device)
    lengths = torch.zeros(b, k, dtype=torch.long, device=device)
    for _ in range(max_len):
        logits, state = model.step(state)
        logp = logits.float().log_softmax(-1).view(b, k, -1)
        vocab = logp.shape[-1]
        # A finished hypothesis extends only by padding (id 0), at no cost.
        stay = torch.full_like(logp, float("-inf"))
        stay[..., 0] = 0.0
        logp = torch.where(finished[..., None], stay, logp)
        total = score[..., None] + logp
        new_len = lengths[..., None] + (~finished[..., None]).long()
        ranked = total / length_penalty(new_len.expand_as(total), alpha)
        best = ranked.view(b, -1).topk(k, dim=1).indices
        beam, token = best // vocab, best % vocab
        score = total.view(b, -1).gather(1, best)
        lengths = new_len.expand_as(total).reshape(b, -1).gather(1, best)
        was_finished = finished.gather(1, beam)
        finished = was_finished | (token == eos)
        tokens = torch.cat(
            [tokens.gather(1, beam[..., None].expand_as(tokens)), token[..., None]], 2
        )
        flat = (beam + torch.arange(b, device=device)[:, None] * k).view(-1)
        state = _reorder(state, flat)
        if bool(finished.all()):
            break
        state = model.advance(state, token.view(-1))
    ranked = score / length_penalty(lengths, alpha)
    pick = ranked.argmax(1)
    rows = torch.arange(b, device=device)
    return tokens[rows, pick], score[rows, pick]


def translate(
    model: nn.Module,
    source: torch.Tensor,
    bos: int,
    eos: int,
    max_len: int,
    beam_size: int = 1,
    alpha: float = 0.0,
) -> torch.Tensor:
    """(B, S) sources -> (B, <= max_len) ids: greedy for `beam_size` 1, else beam search with
    length penalty `alpha`. The one search of the translate task and of archlab's inference."""
    if beam_size == 1:
        return greedy(model, source, bos, eos, max_len)[0]
    return beam_search(model, source, bos, eos, max_len, beam_size, alpha)[0]
