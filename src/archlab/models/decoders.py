"""Target-side decoders over an encoder's memory (B, S, D) and its mask of valid positions.

Each decoder offers teacher forcing (`forward`: all target positions at once) and one-token
steps for search (`start` / `step`), whose state is a dict of batch-first tensors so that beam
search can reorder it with one `index_select` per entry. `last_attention` keeps the
cross-attention weights (B, [heads,] T, S) of the latest call, for attention maps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from archlab.models.transformer import SelfAttention, SinusoidalPositions

State = dict[str, torch.Tensor]


def _key_mask(mask: torch.Tensor | None, memory: torch.Tensor) -> torch.Tensor:
    """(B, S) valid positions; all valid when the encoder returned no mask."""
    if mask is None:
        return torch.ones(memory.shape[:2], dtype=torch.bool, device=memory.device)
    return mask


class CrossAttention(nn.Module):
    """Target positions attend to the memory's valid positions (multi-head)."""

    def __init__(self, d_model: int, memory_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(memory_dim, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout
        self.keep_weights = False
        self.weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.num_heads
        q = self.q(x).view(b, t, h, d // h).transpose(1, 2)
        k, v = self.kv(memory).view(b, memory.shape[1], 2, h, d // h).unbind(2)
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        attn_mask = mask[:, None, None, :]
        if self.keep_weights:  # the weights themselves, for pictures only
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(d // h)
            self.weights = scores.masked_fill(~attn_mask, float("-inf")).softmax(-1).detach()
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class DecoderBlock(nn.Module):
    """Pre-norm: x + causal self-attention, x + cross-attention, x + feed-forward."""

    def __init__(
        self, d_model: int, memory_dim: int, num_heads: int, ff_dim: int, dropout: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, num_heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.cross = CrossAttention(d_model, memory_dim, num_heads, dropout)
        self.norm3 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, ff_dim), nn.GELU(), nn.Linear(ff_dim, d_model), nn.Dropout(dropout)
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, self_mask: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), self_mask, causal=True))
        x = x + self.drop(self.cross(self.norm2(x), memory, mask))
        return x + self.mlp(self.norm3(x))


class TransformerDecoder(nn.Module):
    """Causal target self-attention (padded target positions masked as keys too) and
    cross-attention to the source's valid positions. Steps re-run the prefix: targets here
    are short, and it keeps one code path for training and search."""

    def __init__(
        self,
        vocab_size: int,
        memory_dim: int,
        d_model: int,
        num_heads: int,
        num_layers: int,
        ff_dim: int,
        dropout: float,
        max_len: int,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.positions = SinusoidalPositions(d_model, max_len)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            DecoderBlock(d_model, memory_dim, num_heads, ff_dim, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, vocab_size)
        self.scale = math.sqrt(d_model)
        self.pad_id = pad_id

    def forward(
        self, memory: torch.Tensor, mask: torch.Tensor | None, target: torch.Tensor
    ) -> torch.Tensor:
        """(B, T) target ids (starting with <bos>) -> (B, T, vocab) next-token logits."""
        mask = _key_mask(mask, memory)
        t = target.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=target.device).tril()
        self_mask = causal & (target != self.pad_id)[:, None, None, :]
        x = self.drop(self.positions(self.embed(target) * self.scale))
        for block in self.blocks:
            x = block(x, self_mask, memory, mask)
        return self.out(self.norm(x))

    def start(self, memory: torch.Tensor, mask: torch.Tensor | None, bos: torch.Tensor) -> State:
        return {"memory": memory, "mask": _key_mask(mask, memory), "prefix": bos[:, None]}

    def step(self, state: State) -> tuple[torch.Tensor, State]:
        """Logits (B, vocab) for the token after `state["prefix"]`."""
        return self(state["memory"], state["mask"], state["prefix"])[:, -1], state

    def advance(self, state: State, token: torch.Tensor) -> State:
        return {**state, "prefix": torch.cat([state["prefix"], token[:, None]], 1)}

    def cross_attention(self, on: bool) -> None:
        for block in self.blocks:
            block.cross.keep_weights = on

    def attention_maps(self) -> list[torch.Tensor]:
        """Per layer (B, heads, T, S) from the latest forward with `cross_attention(True)`."""
        return [block.cross.weights for block in self.blocks if block.cross.weights is not None]


class RNNDecoder(nn.Module):
    """An LSTM/GRU cell over target tokens, started from a summary of the source.

    With `attention` (Luong et al. 2015, "general" score, input feeding) each step reads the
    memory's valid positions; without it, the source reaches the decoder only through its
    initial state (Sutskever et al. 2014): the fixed-size bottleneck attention removes.
    """

    def __init__(
        self,
        vocab_size: int,
        memory_dim: int,
        embed_dim: int,
        hidden_size: int,
        cell: str,
        attention: bool,
        dropout: float,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.attention = attention
        feed = hidden_size if attention else 0
        self.cell = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}[cell](embed_dim + feed, hidden_size)
        self.lstm = cell == "lstm"
        self.init = nn.Linear(2 * memory_dim, hidden_size)
        if attention:
            self.score = nn.Linear(memory_dim, hidden_size, bias=False)
            self.combine = nn.Linear(hidden_size + memory_dim, hidden_size)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, vocab_size)
        self.hidden_size = hidden_size
        self.keep_weights = False
        self.weights: list[torch.Tensor] = []

    def start(self, memory: torch.Tensor, mask: torch.Tensor | None, bos: torch.Tensor) -> State:
        """The initial state from the memory's last valid and first positions (a recurrent
        encoder's final states, both directions)."""
        mask = _key_mask(mask, memory)
        last = mask.long().cumsum(1).argmax(1)
        summary = torch.cat([memory[torch.arange(len(memory)), last], memory[:, 0]], -1)
        h = torch.tanh(self.init(summary))
        state = {"memory": memory, "mask": mask, "h": h, "token": bos}
        if self.lstm:
            state["c"] = torch.zeros_like(h)
        if self.attention:
            state["feed"] = torch.zeros_like(h)
            state["keys"] = self.score(memory)
        return state

    def step(self, state: State) -> tuple[torch.Tensor, State]:
        x = self.drop(self.embed(state["token"]))
        if self.attention:
            x = torch.cat([x, state["feed"]], -1)
        if self.lstm:
            h, c = self.cell(x, (state["h"], state["c"]))
            state = {**state, "h": h, "c": c}
        else:
            h = self.cell(x, state["h"])
            state = {**state, "h": h}
        out = h
        if self.attention:
            scores = (state["keys"] @ h.unsqueeze(-1)).squeeze(-1)
            weights = scores.masked_fill(~state["mask"], float("-inf")).softmax(-1)
            if self.keep_weights:
                self.weights.append(weights.detach())
            context = (weights.unsqueeze(1) @ state["memory"]).squeeze(1)
            out = torch.tanh(self.combine(torch.cat([h, context], -1)))
            state["feed"] = out
        return self.out(self.drop(out)), state

    def advance(self, state: State, token: torch.Tensor) -> State:
        return {**state, "token": token}

    def forward(
        self, memory: torch.Tensor, mask: torch.Tensor | None, target: torch.Tensor
    ) -> torch.Tensor:
        """Teacher forcing: (B, T) target ids (starting with <bos>) -> (B, T, vocab)."""
        self.weights = []
        state = self.start(memory, mask, target[:, 0])
        logits = []
        for t in range(target.shape[1]):
            state = self.advance(state, target[:, t])
            step_logits, state = self.step(state)
            logits.append(step_logits)
        return torch.stack(logits, 1)

    def cross_attention(self, on: bool) -> None:
        self.keep_weights = on
        self.weights = []

    def attention_maps(self) -> list[torch.Tensor]:
        """One layer (B, 1, T, S) from the latest forward with `cross_attention(True)`."""
        return [torch.stack(self.weights, 1).unsqueeze(1)] if self.weights else []
