"""Recurrent backbone: stacked LSTM or GRU, optionally bidirectional."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class RNN(nn.Module):
    """Input (B, T, D) -> features (B, T, hidden * directions).

    Padded batches are packed so that padding never reaches the hidden state, which
    matters for the backward direction of a bidirectional RNN.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        cls = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = cls(
            input_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.out_dim = hidden_size * (2 if bidirectional else 1)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if mask is None or (not torch.compiler.is_exporting() and bool(mask.all())):
            out, _ = self.rnn(x)
            return out, mask
        if torch.compiler.is_exporting() and not self.rnn.bidirectional:
            # One graph for every input, so no data-dependent packing: over right-padded input a
            # forward-only RNN's valid outputs are the packed ones; padding is zeroed as
            # `pad_packed_sequence` leaves it.
            out, _ = self.rnn(x)
            return out * mask.unsqueeze(-1).to(out.dtype), mask
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, mask
