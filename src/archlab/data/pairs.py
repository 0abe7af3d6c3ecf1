"""Paired text for translation: source and target token ids, tokenizers fitted on train only.

Targets are framed as `<bos> tokens <eos> <pad>...` (see `archlab.data.framing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
import torch

from archlab.data.base import SPLITS, ArrayDataModule, RawSplit
from archlab.data.batches import TensorBatches
from archlab.data.framing import PairCodec
from archlab.data.tokenizers import Tokenizer, fit_tokenizer, tokenizer_from_json
from archlab.errors import DataError
from archlab.models.spec import TextSpec

# Checkpoint entries whose source tokenizer a translation encoder can start from.
_ENCODER_STATES = {"PairsDataModule": "source_tokenizer", "TextDataModule": "tokenizer"}
_ENCODER_LENGTHS = {"PairsDataModule": "source_length", "TextDataModule": "length"}


def _longest(tokenizer: Tokenizer, texts: Sequence[str], cap: int) -> int:
    ids = tokenizer.encode(texts, cap)
    return max(int((ids != tokenizer.pad_id).sum(1).max()), 1)


class PairsDataModule(ArrayDataModule):
    """Batches of (source ids (B, S), framed target ids (B, T)), both right-padded with 0.

    The built-in `dates` task (see `archlab.data.sources.dates`) is generated, so it needs no
    download; `tsv`, `csv` and `jsonl` read the user's parallel text.
    """

    def read(self) -> dict[str, RawSplit]:
        from archlab.data.sources import dates, parallel

        if self.cfg["source"] == "dates":
            sources, targets = dates.generate_dates(
                self.cfg["num_examples"], self.cfg["split_seed"]
            )
            return {"train": RawSplit(sources, np.array(targets, dtype=object))}
        fields = self.cfg["source_field"], self.cfg["target_field"]

        def reader(path: Any) -> tuple[list[str], np.ndarray]:
            sources, targets = parallel.load_parallel(path, *fields)
            return sources, np.array(targets, dtype=object)

        return self.read_user_files(reader)

    def fit(self, train: RawSplit, known: dict[str, Any]) -> dict[str, Any]:
        """Tokenizers and lengths from the train split; `known` (a pretrained encoder's
        tokenizer) is kept."""
        kind, vocab = self.cfg["tokenizer"], self.cfg["vocab_size"]
        targets = list(train.labels)
        fitted = dict(known)
        if "source_tokenizer" not in fitted:
            texts = train.inputs + targets if self.cfg["shared_vocab"] else train.inputs
            fitted["source_tokenizer"] = fit_tokenizer(kind, texts, vocab).to_json()
        source = tokenizer_from_json(fitted["source_tokenizer"])
        if "source_length" not in fitted:
            fitted["source_length"] = _longest(source, train.inputs, self.cfg["max_source_length"])
        shared = self.cfg["shared_vocab"]
        target = source if shared else fit_tokenizer(kind, targets, vocab)
        fitted["target_tokenizer"] = target.to_json()
        tokens = _longest(target, targets, self.cfg["max_target_length"])
        fitted["target_length"] = tokens + 2  # <bos> and <eos>
        return fitted

    def adopt_encoder(self, checkpoint: dict[str, Any]) -> None:
        """Read sources with the tokenizer of the checkpoint whose encoder this model starts
        from: a transferred embedding means nothing under other token ids."""
        for name, key in _ENCODER_STATES.items():
            state = checkpoint.get(name)
            if state and key in state:
                length = state[_ENCODER_LENGTHS[name]]
                self.fitted = {"source_tokenizer": state[key], "source_length": length}
                return

    def setup(self, stage: str | None = None) -> None:
        if self.tensors:
            return
        raw = self._complete(self.read())
        known = self.fitted or {}
        if "target_tokenizer" not in known:
            self.fitted = self.fit(raw["train"], known)
        for split in SPLITS:
            if not raw[split].inputs:
                raise DataError(
                    f"The {split} split is empty: add pairs or change data.val_fraction / "
                    f"data.test_fraction (now {self.cfg['val_fraction']} / "
                    f"{self.cfg['test_fraction']})."
                )
            self.tensors[split] = (
                self.encode_sources(raw[split].inputs),
                self.encode_targets(list(raw[split].labels)),
            )
            self.datasets[split] = TensorBatches(*self.tensors[split])

    @cached_property
    def codec(self) -> PairCodec:
        return PairCodec.from_fitted(self.fitted)

    @property
    def source_tokenizer(self) -> Tokenizer:
        return self.codec.source_tokenizer

    @property
    def target_tokenizer(self) -> Tokenizer:
        return self.codec.target_tokenizer

    @property
    def bos_id(self) -> int:
        return self.codec.bos_id

    @property
    def eos_id(self) -> int:
        return self.codec.eos_id

    @property
    def target_vocab_size(self) -> int:
        return self.codec.target_vocab_size

    @property
    def target_length(self) -> int:
        return self.codec.target_length

    def encode_sources(self, texts: Sequence[str]) -> torch.Tensor:
        return self.codec.encode_sources(texts)

    def encode_targets(self, texts: Sequence[str]) -> torch.Tensor:
        return self.codec.encode_targets(texts)

    def decode_target(self, ids: Sequence[int]) -> str:
        return self.codec.decode_target(ids)

    def decode_source(self, ids: Sequence[int]) -> str:
        return self.codec.decode_source(ids)

    @property
    def classes(self) -> list[str]:
        return []

    @property
    def spec(self) -> TextSpec:
        tok = self.source_tokenizer
        return TextSpec(tok.vocab_size, self.fitted["source_length"], tok.pad_id)
