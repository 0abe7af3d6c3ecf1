"""Tokenizers fitted on the training split only, with a JSON form saved next to checkpoints.

Fitting on the train split alone keeps test-set vocabulary out of the model, the same rule
as for any other preprocessing statistic. Every tokenizer reserves id 0 for padding and id 1
for unknown input, so models can rely on `padding_idx=0` whatever the kind. A tokenizer fitted
for a language model also has an end-of-text id, the last one: appended after the vocabulary,
it leaves every other id where a tokenizer without it puts them (format_version 2; tokenizers
without it keep writing version 1, so older files and checkpoints read as before).
"""

from __future__ import annotations

import abc
import json
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from tokenizers import Tokenizer as _HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from archlab.errors import DataError

__all__ = [
    "TOKENIZER_KINDS",
    "BPETokenizer",
    "CharTokenizer",
    "Tokenizer",
    "fit_tokenizer",
    "tokenizer_from_json",
]

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
EOS_TOKEN = "<eos>"
_FORMAT_VERSION = 1
_EOS_FORMAT_VERSION = 2  # the same, with an end-of-text id


def _check_max_len(max_len: int) -> None:
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a positive integer, got {max_len!r}.")


class Tokenizer(abc.ABC):
    """Common interface: ids 0 (<pad>) and 1 (<unk>) are fixed for every kind."""

    kind: str = ""
    pad_id: int = 0
    unk_id: int = 1
    eos_id: int | None = None  # the end-of-text id (the last one), if fitted with one

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, specials included (the embedding table size)."""

    @abc.abstractmethod
    def encode(self, texts: Sequence[str], max_len: int) -> torch.Tensor:
        """Encode to a (N, max_len) int64 tensor, truncated and right-padded with `pad_id`."""

    def encode_documents(self, texts: Sequence[str], max_len: int) -> torch.Tensor:
        """As `encode`, with the end-of-text id after each text that fits whole before it: a
        text cut at `max_len` has not ended there, so it gets none."""
        ids = self.encode(texts, max_len)
        if self.eos_id is not None and len(ids):
            lengths = (ids != self.pad_id).sum(1)
            ends = lengths < max_len
            ids[ends.nonzero().squeeze(1), lengths[ends]] = self.eos_id
        return ids

    @abc.abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """The text of `ids`, padding and end-of-text dropped (to show examples to a person)."""

    def _version(self) -> int:
        return _FORMAT_VERSION if self.eos_id is None else _EOS_FORMAT_VERSION

    @abc.abstractmethod
    def to_json(self) -> str:
        """Serialise so that `tokenizer_from_json` restores identical encodings."""


class CharTokenizer(Tokenizer):
    """One id per character: robust for short texts and tiny models, no training needed."""

    kind = "char"

    def __init__(self, chars: Sequence[str], end_of_text: bool = False) -> None:
        """`chars` are the non-special vocabulary characters, in id order starting at 2;
        `end_of_text` adds the end-of-text id after them."""
        chars = list(chars)
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise ValueError("CharTokenizer vocabulary must be distinct single characters.")
        self._chars = chars
        self.eos_id = len(chars) + 2 if end_of_text else None
        self._index = {c: i + 2 for i, c in enumerate(chars)}
        # Dense code point -> id table; the extra last slot maps every larger code point to unk.
        top = max((ord(c) for c in chars), default=0)
        table = np.full(top + 2, self.unk_id, dtype=np.int64)
        for c, i in self._index.items():
            table[ord(c)] = i
        self._table = table

    @classmethod
    def fit(
        cls, texts: Sequence[str], max_vocab: int | None = None, end_of_text: bool = False
    ) -> CharTokenizer:
        """Keep the most frequent characters (ties by character) so the vocabulary is stable.

        `max_vocab` is the total vocabulary size including <pad>, <unk> (and <eos> with
        `end_of_text`); None keeps all.
        """
        specials = 3 if end_of_text else 2
        if max_vocab is not None and max_vocab < specials + 1:
            raise ValueError(
                f"max_vocab must be at least {specials + 1} (the {specials} special ids and "
                f"1 char), got {max_vocab}."
            )
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(text)
        if not counts:
            raise ValueError("Cannot fit a CharTokenizer: the training texts hold no characters.")
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if max_vocab is not None:
            ranked = ranked[: max_vocab - specials]
        return cls([c for c, _ in ranked], end_of_text)

    @property
    def vocab_size(self) -> int:
        return len(self._chars) + 2 + (self.eos_id is not None)

    def encode(self, texts: Sequence[str], max_len: int) -> torch.Tensor:
        """Vectorised: all texts become one code point array mapped through a lookup table."""
        _check_max_len(max_len)
        clipped = [text[:max_len] for text in texts]
        lengths = np.fromiter((len(t) for t in clipped), dtype=np.int64, count=len(clipped))
        out = np.zeros((len(clipped), max_len), dtype=np.int64)
        if lengths.sum():
            points = np.frombuffer(
                "".join(clipped).encode("utf-32-le", errors="surrogatepass"), dtype="<u4"
            )
            ids = self._table[np.minimum(points, len(self._table) - 1)]
            out[np.arange(max_len)[None, :] < lengths[:, None]] = ids
        return torch.from_numpy(out)

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(
            self._chars[i - 2] if i >= 2 else "\N{REPLACEMENT CHARACTER}"
            for i in ids
            if i not in (self.pad_id, self.eos_id)
        )

    def to_json(self) -> str:
        eos = [EOS_TOKEN] if self.eos_id is not None else []
        return json.dumps(
            {
                "kind": self.kind,
                "format_version": self._version(),
                "tokens": [PAD_TOKEN, UNK_TOKEN, *self._chars, *eos],
            },
            ensure_ascii=False,
        )


class BPETokenizer(Tokenizer):
    """Byte-pair encoding via Hugging Face `tokenizers`, with a byte-level pre-tokenizer.

    Byte-level (GPT-2 style) is chosen over whitespace splitting because the tokenizer is fitted
    on the train split only: with all 256 bytes in the base alphabet any character that first
    appears at test time is still encoded losslessly instead of collapsing to <unk>, and
    spacing/punctuation survive. The cost is a minimum vocabulary of 258 (256 bytes + 2 specials;
    259 with <eos>). <eos> is added after training, so it takes the last id.
    """

    kind = "bpe"
    MIN_VOCAB = 256 + 2

    def __init__(self, tokenizer: _HFTokenizer) -> None:
        if (
            tokenizer.token_to_id(PAD_TOKEN) != self.pad_id
            or tokenizer.token_to_id(UNK_TOKEN) != self.unk_id
        ):
            raise ValueError(f"BPE tokenizer must map {PAD_TOKEN}=0 and {UNK_TOKEN}=1.")
        self._tok = tokenizer
        self.eos_id = tokenizer.token_to_id(EOS_TOKEN)
        if self.eos_id not in (None, self.vocab_size - 1):
            raise ValueError(f"BPE tokenizer must map {EOS_TOKEN} to its last id.")

    @classmethod
    def fit(cls, texts: Sequence[str], vocab_size: int, end_of_text: bool = False) -> BPETokenizer:
        """Train in memory; the same texts in the same order give the same merges and ids.
        `vocab_size` counts the special ids, <eos> included with `end_of_text`."""
        if vocab_size < cls.MIN_VOCAB + end_of_text:
            eos = " + <eos>" if end_of_text else ""
            raise ValueError(
                f"BPE vocab_size must be at least {cls.MIN_VOCAB + end_of_text} (256 byte "
                f"symbols + <pad> + <unk>{eos}), got {vocab_size}. Raise vocab_size or use the "
                "'char' tokenizer."
            )
        tok = _HFTokenizer(models.BPE(unk_token=UNK_TOKEN))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size - end_of_text,
            special_tokens=[PAD_TOKEN, UNK_TOKEN],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(list(texts), trainer=trainer)
        if end_of_text:
            tok.add_special_tokens([EOS_TOKEN])
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, texts: Sequence[str], max_len: int) -> torch.Tensor:
        """Batch-encode in Rust (parallel), padding and truncating there too."""
        _check_max_len(max_len)
        texts = list(texts)
        if not texts:
            return torch.zeros((0, max_len), dtype=torch.long)
        tok = self._tok
        tok.enable_truncation(max_length=max_len)
        tok.enable_padding(
            direction="right", pad_id=self.pad_id, pad_token=PAD_TOKEN, length=max_len
        )
        # encode_batch_fast (tokenizers >= 0.20) skips character offsets we do not need.
        encode_batch = getattr(tok, "encode_batch_fast", tok.encode_batch)
        try:
            encodings = encode_batch(texts, add_special_tokens=False)
        finally:
            tok.no_truncation()
            tok.no_padding()
        return torch.from_numpy(np.array([enc.ids for enc in encodings], dtype=np.int64))

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=True)

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "format_version": self._version(),
                "tokenizer": json.loads(self._tok.to_str()),
            },
            ensure_ascii=False,
        )


TOKENIZER_KINDS: dict[str, type[Tokenizer]] = {"char": CharTokenizer, "bpe": BPETokenizer}


def fit_tokenizer(
    kind: str, texts: Sequence[str], vocab_size: int, end_of_text: bool = False
) -> Tokenizer:
    """Fit a tokenizer of `kind` ("char" or "bpe") on training texts; vocab_size counts specials.
    `end_of_text` adds an end-of-text id (the last one), for language models."""
    if kind == "char":
        return CharTokenizer.fit(texts, max_vocab=vocab_size, end_of_text=end_of_text)
    if kind == "bpe":
        return BPETokenizer.fit(texts, vocab_size=vocab_size, end_of_text=end_of_text)
    raise ValueError(f"Unknown tokenizer kind {kind!r}; valid kinds: {sorted(TOKENIZER_KINDS)}.")


def tokenizer_from_json(
    text: str, *, source: str = "tokenizer JSON", expect_kind: str | None = None
) -> Tokenizer:
    """Restore a tokenizer saved with `to_json` (either kind, chosen by its "kind" field).

    `source` names the file in error messages; `expect_kind` rejects a tokenizer of another
    kind (e.g. a checkpoint trained with "char" loaded by a "bpe" config).
    """
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError) as err:
        raise DataError(
            f"{source}: the tokenizer file is corrupt (not valid JSON: {err}). Re-create it by "
            "re-running training, or point to the tokenizer.json saved with the checkpoint."
        ) from None
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in TOKENIZER_KINDS:
        raise DataError(
            f"{source}: the tokenizer file is corrupt or not an archlab tokenizer (kind "
            f"{kind!r}; expected one of {sorted(TOKENIZER_KINDS)}). Use the tokenizer.json saved "
            "with the checkpoint."
        )
    if expect_kind is not None and kind != expect_kind:
        raise DataError(
            f"{source}: mismatched tokenizer: the file holds a {kind!r} tokenizer but "
            f"{expect_kind!r} was expected. Use the tokenizer saved with the same run/config."
        )
    version = data.get("format_version")
    if version not in (_FORMAT_VERSION, _EOS_FORMAT_VERSION):
        raise DataError(
            f"{source}: unsupported tokenizer format_version {version!r} (this archlab reads "
            f"{_FORMAT_VERSION} and {_EOS_FORMAT_VERSION}). Re-fit the tokenizer with this version."
        )
    eos = version == _EOS_FORMAT_VERSION
    try:
        if kind == "char":
            tokens = data["tokens"]
            if not isinstance(tokens, list) or tokens[:2] != [PAD_TOKEN, UNK_TOKEN]:
                raise ValueError(f"tokens must start with {PAD_TOKEN!r}, {UNK_TOKEN!r}")
            if eos and tokens[-1] != EOS_TOKEN:
                raise ValueError(f"format_version {version} tokens must end with {EOS_TOKEN!r}")
            return CharTokenizer(tokens[2 : len(tokens) - eos], end_of_text=eos)
        tokenizer = BPETokenizer(_HFTokenizer.from_str(json.dumps(data["tokenizer"])))
        if eos != (tokenizer.eos_id is not None):
            raise ValueError(f"format_version {version} does not match its {EOS_TOKEN} token")
        return tokenizer
    except Exception as err:  # HF raises its own exception types for malformed JSON
        raise DataError(
            f"{source}: the {kind!r} tokenizer file is corrupt ({type(err).__name__}: {err}). "
            "Re-create it by re-running training."
        ) from None
