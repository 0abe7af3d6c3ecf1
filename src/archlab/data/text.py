"""Text: docstrings of Python's own standard library by default; CSV, JSONL and folders of .txt;
unlabelled corpora for pretraining."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Generator, Iterator, Mapping
from contextlib import closing
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archlab.data.augment import augment_tokens
from archlab.data.base import (
    NO_LABEL,
    ArrayDataModule,
    RawSplit,
    predefined_splits,
    say,
    unlabelled,
)
from archlab.data.corpus_cache import cache_path, cached_documents
from archlab.data.sources import corpus, texts
from archlab.data.streaming import RecordView
from archlab.data.text_cache import (
    TextSource,
    TokenWindow,
    build_documents,
    build_tokens,
    token_lengths,
)
from archlab.data.tokenizers import Tokenizer, fit_tokenizer
from archlab.data.transforms import restore_tokenizer, text_tensor
from archlab.errors import DataError
from archlab.models.spec import TextSpec

# Text files larger than this on disk (.gz counted 4x) are streamed by default: at up to one
# token per byte, their int64 token ids could take about 1 GiB (data.in_memory decides too).
TEXT_IN_MEMORY_LIMIT = 128 << 20
_STREAMABLE = ("csv", "jsonl", "corpus")
AUTO_LENGTH_STEP = 32  # data.max_length null: lengths are multiples of this
_COUNT_CHUNK = 10_000  # texts encoded at a time to count their tokens


def _token_counts(tokenizer: Tokenizer, texts: list[str], max_len: int) -> np.ndarray:
    """Each text's number of ids (at most `max_len`, its end-of-text id included), encoded a
    chunk at a time: no (N, max_len) matrix of every text is held just to count."""
    chunks = (
        tokenizer.encode_documents(texts[i : i + _COUNT_CHUNK], max_len) != tokenizer.pad_id
        for i in range(0, len(texts), _COUNT_CHUNK)
    )
    return np.concatenate([chunk.sum(1).numpy() for chunk in chunks])


class TextDataModule(ArrayDataModule):
    """(N, T) token ids, right-padded with 0; the tokenizer is trained on the train split.

    The built-in `stdlib_docs` task asks which standard-library package a docstring comes
    from; it is read from the interpreter's own source files, so it needs no download. The
    built-in corpus `python_docs` is every other docstring and comment of those files and of
    the installed packages (the `packages` of the labelled task and its texts left out).

    With `end_of_text` (a language model's data) the tokenizer gets an end-of-text id and every
    text that fits whole ends with it, so the model learns where documents end.
    """

    def __init__(
        self, cfg: Mapping[str, Any], seed: int | None = None, *, end_of_text: bool = False
    ) -> None:
        super().__init__(cfg, seed)
        self.end_of_text = end_of_text

    def _documents(self, documents: Generator[str], where: object) -> tuple[list[str], Any]:
        """At most `max_examples` documents, read lazily: a larger corpus is not read."""
        with closing(documents):  # a corpus cache is written only when every document was read
            docs = list(islice(documents, self.cfg["max_examples"]))
        if not docs:
            raise DataError(f"{where}: the corpus holds no documents (every line is blank).")
        return unlabelled(docs)

    def read(self) -> dict[str, RawSplit]:
        source = self.cfg["source"]
        if source == "stdlib_docs":
            docstrings = texts.load_stdlib_docstrings(
                list(self.cfg["packages"]), max_per_class=self.cfg["max_per_class"]
            )
            return {"train": RawSplit(*docstrings)}
        if source == "python_docs":
            return {"train": RawSplit(*self._documents(self._python_docs(), "python_docs"))}
        if source == "corpus":
            return self.read_user_files(
                lambda path: self._documents(
                    corpus.iter_corpus(path, self.cfg["documents"], self.cfg["text_field"]), path
                )
            )
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

    def _python_docs(self) -> Generator[str]:
        """The built-in corpus, extracted from the installed sources once, then cached."""
        packages = list(self.cfg["packages"])

        def extract() -> Iterator[str]:
            held_out = texts.load_stdlib_docstrings(packages)[0] if packages else []
            return corpus.iter_python_docs(exclude=packages, held_out=held_out)

        key = {
            **corpus.python_docs_fingerprint([Path(corpus.__file__), Path(texts.__file__)]),
            "packages": packages,
        }
        return cached_documents(cache_path(self.cache_dir, "python_docs", key), extract, say)

    def _text_source(self) -> TextSource:
        """The user's csv/jsonl table or corpus as files per split and a reader of each file."""
        cfg, path = self.cfg, self.user_path()
        entries = predefined_splits(path) or {"train": path}
        if cfg["source"] == "corpus":

            def read(file: Path) -> Iterator[tuple[str, str]]:
                for doc in corpus.iter_corpus(file, cfg["documents"], cfg["text_field"]):
                    yield doc, NO_LABEL

            files = {s: tuple(map(str, corpus.corpus_files(p))) for s, p in entries.items()}
            settings = {"documents": cfg["documents"], "text_field": cfg["text_field"]}
            return TextSource("corpus", files, read, settings, cfg["max_examples"])

        def read(file: Path) -> Iterator[tuple[str, str]]:
            return texts.iter_labelled_rows(file, cfg["text_field"], cfg["label_field"])

        files = {s: (str(p),) for s, p in entries.items()}
        fields = {"text_field": cfg["text_field"], "label_field": cfg["label_field"]}
        return TextSource(cfg["source"], files, read, fields, None)

    def stream(self) -> dict[str, RawSplit] | None:
        """A csv/jsonl table or a corpus too large for memory (or data.in_memory=false): its
        documents copied once into the on-disk cache, tokenized there after fitting."""
        if self.cfg["source"] not in _STREAMABLE:
            return super().stream()
        source = self._text_source()
        files = [f for split in source.splits.values() for f in split]
        nbytes = sum(os.path.getsize(f) * (4 if f.endswith(".gz") else 1) for f in files)
        what = f"{len(files)} text file(s)"
        if not self.choose_streaming(0, nbytes, what, TEXT_IN_MEMORY_LIMIT, "on disk"):
            return None
        start = time.perf_counter()
        store, reused = build_documents(source, self.cache_dir)
        took = time.perf_counter() - start
        say(f"data: documents {store.path} ({'reused' if reused else 'read'} in {took:.1f} s).")
        for split, size in store.sizes.items():
            if not size:
                raise DataError(f"{source.splits[split][0]}: no documents (every line is blank).")
        return self.views(store, store.sizes, store.labels())

    def fit(self, train_inputs: list[str] | RecordView) -> dict[str, Any]:
        streamed = isinstance(train_inputs, RecordView)
        if streamed:  # fitted on a seeded sample; a set max_length comes with the tokens
            sample = train_inputs.sample(self.cfg["fit_sample"], self.cfg["split_seed"])
            train_inputs = sample.cache.read(sample.index)
        tokenizer = fit_tokenizer(
            self.cfg["tokenizer"], train_inputs, self.cfg["vocab_size"], self.end_of_text
        )
        fitted = {"tokenizer": tokenizer.to_json()}
        if self.cfg["max_length"] is None:
            fitted["length"] = self._auto_length(tokenizer, train_inputs)
        elif not streamed:
            longest = _token_counts(tokenizer, train_inputs, self.cfg["max_length"]).max()
            fitted["length"] = max(int(longest), 1)
        return fitted

    def _auto_length(self, tokenizer: Tokenizer, train_texts: list[str]) -> int:
        """`data.max_length` null: the shortest multiple of 32 tokens that holds
        `length_coverage` of the train texts whole, at most `max_auto_length` (no longer than
        the longest text). A fixed length truncates long real texts (reviews, reports) as much
        as it pads short ones; the length the texts have fits both."""
        cap = self.cfg["max_auto_length"]
        lengths = _token_counts(tokenizer, train_texts, cap)
        wanted = float(np.quantile(lengths, self.cfg["length_coverage"]))
        step = AUTO_LENGTH_STEP
        length = max(min(cap, int(lengths.max()), math.ceil(wanted / step) * step), 1)
        whole = float((lengths <= length).mean())
        say(
            f"data: texts truncated at {length} tokens (auto: {whole:.0%} of the train texts "
            f"fit whole; data.max_length sets it)."
        )
        return length

    @cached_property
    def tokenizer(self) -> Tokenizer:
        return restore_tokenizer(self.fitted, self.cfg["tokenizer"])

    def after_fit(self, raw: dict[str, RawSplit]) -> dict[str, RawSplit]:
        """Every document tokenized once into the token cache (keyed by the tokenizer); the
        fitted length is the longest train document's, as in memory."""
        views = {split: split_raw.inputs for split, split_raw in raw.items()}
        width = max(self.cfg["max_length"] or 0, self.fitted.get("length", 0))
        start = time.perf_counter()
        tokens, reused = build_tokens(views["train"].cache, self.tokenizer, width, self.cache_dir)
        took = time.perf_counter() - start
        say(f"data: token ids {tokens.path} ({'reused' if reused else 'built'} in {took:.1f} s).")
        if "length" not in self.fitted:
            longest = token_lengths(tokens)[views["train"].index].max(initial=0)
            self.fitted["length"] = max(int(min(longest, self.cfg["max_length"])), 1)
        return {
            split: RawSplit(RecordView(tokens, views[split].index), split_raw.labels)
            for split, split_raw in raw.items()
        }

    def batch_transform(self) -> TokenWindow:
        return TokenWindow(self.fitted["length"])

    def transform(self, inputs: list[str]) -> torch.Tensor:
        return text_tensor(self.tokenizer, inputs, self.fitted)

    def augment_batch(self, inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        tok = self.tokenizer
        return augment_tokens(inputs, self.cfg["augment"], generator, tok.pad_id, tok.unk_id)

    @property
    def spec(self) -> TextSpec:
        return TextSpec(self.tokenizer.vocab_size, self.fitted["length"], self.tokenizer.pad_id)
