"""Text: docstrings of Python's own standard library by default; CSV, JSONL and folders of .txt."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import torch

from archlab.data.augment import augment_tokens
from archlab.data.base import ArrayDataModule, RawSplit, say
from archlab.data.sources import texts
from archlab.data.tokenizers import Tokenizer, fit_tokenizer
from archlab.data.transforms import restore_tokenizer, text_tensor
from archlab.models.spec import TextSpec


class TextDataModule(ArrayDataModule):
    """(N, T) token ids, right-padded with 0; the tokenizer is trained on the train split.

    The built-in `stdlib_docs` task asks which standard-library package a docstring comes
    from; it is read from the interpreter's own source files, so it needs no download.
    """

    def read(self) -> dict[str, RawSplit]:
        source = self.cfg["source"]
        if source == "stdlib_docs":
            corpus = texts.load_stdlib_docstrings(
                list(self.cfg["packages"]), max_per_class=self.cfg["max_per_class"]
            )
            return {"train": RawSplit(*corpus)}
        if source == "folder":
            skipped: list[tuple[str, str]] | None = [] if self.cfg["on_bad"] == "skip" else None
            splits = self.read_user_files(lambda path: texts.load_text_folder(path, skipped))
            self.bad_inputs = [{"path": p, "reason": r} for p, r in skipped or []]
            if self.bad_inputs:
                say(f"data: skipped {len(self.bad_inputs)} unreadable text file(s) (on_bad=skip).")
            return splits
        return self.read_user_files(
            lambda path: texts.load_text_table(
                path, self.cfg["text_field"], self.cfg["label_field"]
            )
        )

    def fit(self, train_inputs: list[str]) -> dict[str, Any]:
        tokenizer = fit_tokenizer(self.cfg["tokenizer"], train_inputs, self.cfg["vocab_size"])
        ids = tokenizer.encode(train_inputs, self.cfg["max_length"])
        length = int((ids != tokenizer.pad_id).sum(1).max())
        return {"tokenizer": tokenizer.to_json(), "length": max(length, 1)}

    @cached_property
    def tokenizer(self) -> Tokenizer:
        return restore_tokenizer(self.fitted, self.cfg["tokenizer"])

    def transform(self, inputs: list[str]) -> torch.Tensor:
        return text_tensor(self.tokenizer, inputs, self.fitted)

    def augment_batch(self, inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        tok = self.tokenizer
        return augment_tokens(inputs, self.cfg["augment"], generator, tok.pad_id, tok.unk_id)

    @property
    def spec(self) -> TextSpec:
        return TextSpec(self.tokenizer.vocab_size, self.fitted["length"], self.tokenizer.pad_id)
