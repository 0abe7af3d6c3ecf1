"""On-disk caches of a text source too large for memory: its documents, then their token ids.

Two stages, each a directory built whole or not at all (`cache.build_dir`):

1. Documents (`DocumentStore`), keyed by the source files (path, size, mtime) and the
   settings that decide what a document is (format, fields, `documents`, `max_examples`):
   the UTF-8 text of every document back to back (`documents.bin`), where each one starts
   (`offsets.npy`) and its label (`labels.npy`, codes into `meta.json`'s class names). It is
   read once, in order, from the user's files; afterwards any document is one `pread`, so the
   tokenizer is fitted on a seeded sample of the train split without another pass.
2. Token ids, keyed by the documents' key, the fitted tokenizer (its JSON) and
   `data.max_length`: a `RecordCache` of fixed-size records, document i's ids truncated and
   right-padded to `max_length` (uint16 when the vocabulary allows, else int32), and the
   count of real tokens of each (`lengths.npy`). Tokenized in batches in the main process:
   the BPE tokenizer encodes a batch on all cores itself, the character one is vectorised.
   Loader workers read batches of records and cut them to the run's fitted length.

A changed file or reading setting gives another documents key; another tokenizer or
`max_length` another token key: both rebuild, and what did not change is reused.
"""

from __future__ import annotations

import json
import os
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archlab.data.cache import RECORDS, RecordCache, build_dir, files_key, write_meta
from archlab.data.tokenizers import Tokenizer

FORMAT_VERSION = 1
_DOCS, _OFFSETS, _LABELS, _LENGTHS = "documents.bin", "offsets.npy", "labels.npy", "lengths.npy"
_CHUNK = 2048  # documents tokenized per task


@dataclass(frozen=True)
class TextSource:
    """What a text source gives the cache: its files per split (in reading order), a reader of
    one file's (text, label) pairs, and the settings that shape what it yields."""

    kind: str  # names the cache directories, e.g. "corpus"
    splits: dict[str, tuple[str, ...]]
    read: Callable[[Path], Iterator[tuple[str, str]]]
    settings: dict[str, Any]
    limit: int | None  # documents per split at most (None: all)

    def key(self) -> str:
        files = [f for split in self.splits.values() for f in split]
        shape = [FORMAT_VERSION, self.kind, self.settings, self.limit, list(self.splits)]
        return files_key(shape, files)


class DocumentStore:
    """A complete documents directory: texts read by index, labels and per-split counts."""

    bad: list = []  # text sources stop on a bad row; nothing is skipped

    def __init__(self, path: Path) -> None:
        self.path = path
        meta = json.loads((path / "meta.json").read_text())
        self.sizes: dict[str, int] = meta["sizes"]
        self.classes: list[str] = meta["classes"]
        self.count = sum(self.sizes.values())

    def labels(self) -> np.ndarray:
        """The label of every document (str)."""
        codes = np.load(self.path / _LABELS)
        return np.array(self.classes, dtype=str)[codes]

    def read(self, indices: np.ndarray) -> list[str]:
        """The texts of documents `indices`, in that order."""
        offsets = np.load(self.path / _OFFSETS, mmap_mode="r")
        with open(self.path / _DOCS, "rb") as f:
            fd, texts = f.fileno(), []
            for i in np.asarray(indices, dtype=np.int64):
                start, end = int(offsets[i]), int(offsets[i + 1])
                texts.append(os.pread(fd, end - start, start).decode("utf-8"))
        return texts

    def read_range(self, start: int, stop: int) -> list[str]:
        """The texts of documents start..stop-1, in one read."""
        offsets = np.load(self.path / _OFFSETS, mmap_mode="r")
        bounds = (np.asarray(offsets[start : stop + 1]) - int(offsets[start])).tolist()
        with open(self.path / _DOCS, "rb") as f:
            data = os.pread(f.fileno(), bounds[-1], int(offsets[start]))
        return [data[a:b].decode("utf-8") for a, b in pairwise(bounds)]


def _write_documents(source: TextSource, tmp: Path) -> None:
    offsets, codes = array("q", [0]), array("i")
    classes: dict[str, int] = {}
    sizes = {}
    with open(tmp / _DOCS, "wb") as f:
        for split, files in source.splits.items():
            before = len(codes)
            pairs = (pair for file in files for pair in source.read(Path(file)))
            for text, label in islice(pairs, source.limit):
                data = text.encode("utf-8")
                f.write(data)
                offsets.append(offsets[-1] + len(data))
                codes.append(classes.setdefault(label, len(classes)))
            sizes[split] = len(codes) - before
    np.save(tmp / _OFFSETS, np.frombuffer(offsets, dtype=np.int64))
    np.save(tmp / _LABELS, np.frombuffer(codes, dtype=np.int32))
    (tmp / "meta.json").write_text(json.dumps({"sizes": sizes, "classes": list(classes)}))


def build_documents(source: TextSource, root: Path) -> tuple[DocumentStore, bool]:
    """The documents of `source` under `root` (read now if missing) and whether reused."""
    path, reused = build_dir(
        root, f"{source.kind}-docs-{source.key()}", lambda tmp: _write_documents(source, tmp)
    )
    return DocumentStore(path), reused


# ---------------------------------------------------------------- token ids
def token_dtype(tokenizer: Tokenizer) -> str:
    return "uint16" if tokenizer.vocab_size <= 1 << 16 else "int32"


def _write_tokens(store: DocumentStore, tokenizer: Tokenizer, width: int, tmp: Path) -> None:
    dtype, lengths = token_dtype(tokenizer), []
    with open(tmp / RECORDS, "wb") as f:
        for start in range(0, store.count, _CHUNK):
            texts = store.read_range(start, min(start + _CHUNK, store.count))
            ids = tokenizer.encode_documents(texts, width).numpy()
            lengths.append((ids != tokenizer.pad_id).sum(1).astype(np.int32))
            f.write(ids.astype(dtype).tobytes())
    np.save(tmp / _LENGTHS, np.concatenate(lengths) if lengths else np.zeros(0, np.int32))
    write_meta(tmp, store.count, (width,), dtype, [])


def build_tokens(
    store: DocumentStore, tokenizer: Tokenizer, width: int, root: Path
) -> tuple[RecordCache, bool]:
    """The token ids of every document of `store` (tokenized now if missing), whether reused."""
    key = files_key([FORMAT_VERSION, store.path.name, tokenizer.to_json(), width], [])
    path, reused = build_dir(
        root,
        f"{store.path.name.split('-docs-')[0]}-tokens-{key}",
        lambda tmp: _write_tokens(store, tokenizer, width, tmp),
    )
    return RecordCache(path), reused


def token_lengths(cache: RecordCache) -> np.ndarray:
    """Real (non-padding) tokens of each record of a token cache."""
    return np.load(cache.path / _LENGTHS)


class TokenWindow:
    """Token records cut to the run's fitted length, as int64 ids (picklable: runs in the
    loader's worker processes)."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __call__(self, records: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(records[:, : self.length].astype(np.int64))
