"""Translation pairs as token ids and back: the source tokenizer, and targets framed as
`<bos> tokens <eos> <pad>...` with the two frame ids just above the target tokenizer's own
vocabulary (so any tokenizer kind works unchanged).

No Lightning here: the pairs data module (training, evaluation) and `archlab.inference` (new
sentences) encode and decode through this one class, from the state saved in checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from archlab.data.tokenizers import Tokenizer, tokenizer_from_json


@dataclass(frozen=True)
class PairCodec:
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer
    source_length: int
    target_length: int  # framed: the target tokens, <bos> and <eos>

    @classmethod
    def from_fitted(cls, fitted: Mapping[str, Any]) -> PairCodec:
        """From the pairs data module's fitted state (as checkpoints hold it)."""
        where = "the run's tokenizer"
        return cls(
            tokenizer_from_json(fitted["source_tokenizer"], source=where),
            tokenizer_from_json(fitted["target_tokenizer"], source=where),
            int(fitted["source_length"]),
            int(fitted["target_length"]),
        )

    @property
    def bos_id(self) -> int:
        return self.target_tokenizer.vocab_size

    @property
    def eos_id(self) -> int:
        return self.target_tokenizer.vocab_size + 1

    @property
    def target_vocab_size(self) -> int:
        return self.target_tokenizer.vocab_size + 2

    @property
    def max_decode_length(self) -> int:
        """The most ids a decoder writes: the framed length less <bos>."""
        return self.target_length - 1

    def encode_sources(self, texts: Sequence[str]) -> torch.Tensor:
        return self.source_tokenizer.encode(list(texts), self.source_length)

    def encode_targets(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, target_length): <bos> tokens <eos> padding (tokens truncated to fit)."""
        ids = self.target_tokenizer.encode(list(texts), self.target_length - 2)
        lengths = (ids != self.target_tokenizer.pad_id).sum(1)
        framed = torch.zeros(len(ids), self.target_length, dtype=torch.long)
        framed[:, 0] = self.bos_id
        framed[:, 1:-1] = ids
        framed[torch.arange(len(ids)), lengths + 1] = self.eos_id
        return framed

    def decode_target(self, ids: Sequence[int]) -> str:
        """The text of generated or framed target ids: up to the first <eos>, frame dropped."""
        tokens = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i != self.bos_id:
                tokens.append(i)
        return self.target_tokenizer.decode(tokens)

    def decode_source(self, ids: Sequence[int]) -> str:
        return self.source_tokenizer.decode([int(i) for i in ids])
