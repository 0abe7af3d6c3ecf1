"""Encoder-decoders for translation: archlab's stem + backbone encode the source (built as
`build_body` builds them, so an `mlm`-pretrained encoder transfers by name), a decoder
writes the target."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from archlab.models.build import build_body
from archlab.models.decoders import RNNDecoder, State, TransformerDecoder
from archlab.models.spec import TextSpec


class Seq2Seq(nn.Module):
    """`stem` and `backbone` (the encoder) keep their classifier names; `decoder` is new."""

    def __init__(self, stem: nn.Module, backbone: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.backbone = backbone
        self.decoder = decoder

    def encode(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h, mask = self.stem(source)
        return self.backbone(h, mask)

    def forward(self, source: torch.Tensor, target_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: (B, S) source ids, (B, T) target ids from <bos> -> (B, T, V)."""
        memory, mask = self.encode(source)
        return self.decoder(memory, mask, target_in)

    def start(self, source: torch.Tensor, bos: int) -> State:
        memory, mask = self.encode(source)
        first = torch.full((len(source),), bos, dtype=torch.long, device=source.device)
        return self.decoder.start(memory, mask, first)

    def step(self, state: State) -> tuple[torch.Tensor, State]:
        return self.decoder.step(state)

    def advance(self, state: State, token: torch.Tensor) -> State:
        return self.decoder.advance(state, token)


def build_translator(
    cfg: Mapping[str, Any], source: TextSpec, target_vocab: int, target_length: int
) -> Seq2Seq:
    """A translator from a validated `model` section: a Transformer decoder for
    model=transformer, an LSTM/GRU decoder (with attention unless `model.attention=false`)
    for model=rnn, an attentive LSTM decoder for model=cnn."""
    stem, backbone, _ = build_body(cfg, source)
    width = backbone.out_dim
    if cfg["name"] == "transformer":
        decoder: nn.Module = TransformerDecoder(
            target_vocab,
            width,
            cfg["d_model"],
            cfg["num_heads"],
            cfg["num_layers"],
            cfg["ff_dim"],
            cfg["dropout"],
            target_length,
        )
    elif cfg["name"] == "rnn":
        decoder = RNNDecoder(
            target_vocab,
            width,
            cfg["embed_dim"],
            cfg["hidden_size"],
            cfg["cell"],
            cfg["attention"],
            cfg["dropout"],
        )
    else:
        decoder = RNNDecoder(
            target_vocab, width, cfg["embed_dim"], width, "lstm", True, cfg["dropout"]
        )
    return Seq2Seq(stem, backbone, decoder)
