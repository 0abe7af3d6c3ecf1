"""Text readers and tokenizers: real files read back, precise errors, JSON round trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from archlab.data.sources.texts import (
    load_stdlib_docstrings,
    load_text_folder,
    load_text_table,
)
from archlab.data.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    fit_tokenizer,
    tokenizer_from_json,
)
from archlab.errors import DataError

# ---------------------------------------------------------------- tables


def test_csv_table_reads_quoted_multiline_text(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        'id,text,label\n1,"hello, world",pos\n2,"two\nlines",neg\n3,café ☕,pos\n',
        encoding="utf-8",
    )
    texts, labels = load_text_table(path, "text", "label")
    assert texts == ["hello, world", "two\nlines", "café ☕"]
    assert labels.dtype.kind == "U" and labels.tolist() == ["pos", "neg", "pos"]


def test_jsonl_table_reads_and_stringifies_labels(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    rows = [{"text": "a b", "y": 1}, {"text": "c", "y": "neg", "extra": 3}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    texts, labels = load_text_table(path, "text", "y")
    assert texts == ["a b", "c"]
    assert labels.tolist() == ["1", "neg"]


def test_table_unsupported_suffix_lists_supported(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.tsv.*'\.csv', '\.jsonl'"):
        load_text_table(path, "text", "label")


def test_table_non_utf8_names_line_and_reencode(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"text,label\nok,a\ncaf\xe9,b\n")
    with pytest.raises(DataError, match=r"t\.csv, line 3: .*[Rr]e-encode.*UTF-8"):
        load_text_table(path, "text", "label")
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"text": "ok", "label": "a"}\n{"text": "caf\xe9", "label": "b"}\n')
    with pytest.raises(DataError, match=r"t\.jsonl, line 2: .*[Rr]e-encode.*UTF-8"):
        load_text_table(path, "text", "label")


def test_csv_missing_field_in_header_and_in_row(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("body,label\nx,a\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.csv, line 1: .*'text'.*\['body', 'label'\]"):
        load_text_table(path, "text", "label")
    path.write_text("text,label\nx,a\ny\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.csv, line 3: .*no 'label' field.*\['text'\]"):
        load_text_table(path, "text", "label")
    path.write_text("text,label\nx,a\ny,z,b\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.csv, line 3: 3 fields.*[Qq]uote"):
        load_text_table(path, "text", "label")


def test_jsonl_missing_field_invalid_json_and_empty_text(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "x", "label": 1}\n{"txt": "y", "label": 2}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.jsonl, line 2: .*'text'.*\['label', 'txt'\]"):
        load_text_table(path, "text", "label")
    path.write_text('{"text": "x", "label": 1}\n\n{"text": "y", label: 2}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.jsonl, line 3: invalid JSON"):
        load_text_table(path, "text", "label")
    path.write_text('{"text": "x", "label": 1}\n{"text": "  ", "label": 2}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.jsonl, line 2: the text field 'text' is empty"):
        load_text_table(path, "text", "label")


def test_csv_empty_text_line_number_after_multiline_record(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('text,label\n"a\nb",x\n"",y\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.csv, line 4: the text field 'text' is empty"):
        load_text_table(path, "text", "label")


def test_table_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,label\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.csv: no data rows"):
        load_text_table(path, "text", "label")


# ---------------------------------------------------------------- folders and corpora


def test_text_folder_sorted_and_labelled(tmp_path: Path) -> None:
    for cls, name, body in [("b", "2.txt", "b two"), ("b", "1.txt", "b one"), ("a", "x.txt", "a")]:
        (tmp_path / cls).mkdir(exist_ok=True)
        (tmp_path / cls / name).write_text(body, encoding="utf-8")
    (tmp_path / "a" / "notes.md").write_text("ignored", encoding="utf-8")
    texts, labels = load_text_folder(tmp_path)
    assert texts == ["a", "b one", "b two"]
    assert labels.tolist() == ["a", "b", "b"]


def test_text_folder_layout_and_encoding_errors(tmp_path: Path) -> None:
    (tmp_path / "loose.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match=r"no class subfolders.*subfolder per class"):
        load_text_folder(tmp_path)
    (tmp_path / "empty_cls").mkdir()
    with pytest.raises(DataError, match=r"empty_cls: class folder holds no \.txt"):
        load_text_folder(tmp_path)
    (tmp_path / "empty_cls" / "bad.txt").write_bytes(b"fine\n\x80oops")
    with pytest.raises(DataError, match=r"bad\.txt, line 2: .*UTF-8"):
        load_text_folder(tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_text_folder(tmp_path / "missing")


# ---------------------------------------------------------------- stdlib docstrings


def test_stdlib_docstrings_classes_text_and_determinism() -> None:
    packages = ["json", "email", "logging"]
    texts, labels = load_stdlib_docstrings(packages)
    assert sorted(set(labels.tolist())) == sorted(packages)
    json_docs = [t for t, y in zip(texts, labels, strict=True) if y == "json"]
    assert any("JSON" in t and "Python" in t for t in json_docs)
    assert all(len(t) >= 40 and "\n" not in t and "  " not in t for t in texts)
    texts2, labels2 = load_stdlib_docstrings(packages)
    assert texts == texts2 and labels.tolist() == labels2.tolist()


def test_stdlib_docstrings_subset_and_missing_package() -> None:
    _, labels = load_stdlib_docstrings(["json", "email"], max_per_class=5)
    assert labels.tolist().count("email") == 5 and labels.tolist().count("json") == 5
    full, _ = load_stdlib_docstrings(["json"])
    sub, _ = load_stdlib_docstrings(["json"], max_per_class=5)
    assert sub[0] == full[0] and set(sub) <= set(full)
    with pytest.raises(DataError, match=r"'no_such_pkg' not found: searched .*python"):
        load_stdlib_docstrings(["json", "no_such_pkg"])


# ---------------------------------------------------------------- tokenizers

TRAIN = ["the cat sat on the mat", "the dog sat", "a cat and a dog", "mat mat mat"] * 5


def test_char_tokenizer_vocab_padding_truncation_unk() -> None:
    tok = CharTokenizer.fit(["aab", "bc"], max_vocab=None)
    assert isinstance(tok, Tokenizer)
    assert (tok.pad_id, tok.unk_id, tok.vocab_size) == (0, 1, 5)
    # Frequencies a=2, b=2, c=1: tie a/b broken by character.
    ids = tok.encode(["abc", "cz", "abcabc", ""], max_len=4)
    assert ids.dtype == torch.long
    assert ids.tolist() == [[2, 3, 4, 0], [4, 1, 0, 0], [2, 3, 4, 2], [0, 0, 0, 0]]
    small = CharTokenizer.fit(["aab", "bc"], max_vocab=3)
    assert small.vocab_size == 3
    assert small.encode(["abc"], 3).tolist() == [[2, 1, 1]]
    assert tok.encode(["😀a"], 2).tolist() == [[1, 2]]


def test_bpe_tokenizer_specials_padding_and_determinism() -> None:
    tok = fit_tokenizer("bpe", TRAIN, vocab_size=300)
    assert isinstance(tok, BPETokenizer)
    assert (tok.pad_id, tok.unk_id) == (0, 1)
    assert 258 <= tok.vocab_size <= 300
    ids = tok.encode(["the cat", "the cat sat on the mat " * 10, ""], max_len=8)
    assert ids.shape == (3, 8) and ids.dtype == torch.long
    assert (ids[0] == 0).any() and (ids[1] != 0).all() and (ids[2] == 0).all()
    assert not (ids == tok.unk_id).any()
    # Unseen characters are still encoded (byte-level), never as <unk>.
    unseen = tok.encode(["ünïcødé 漢字"], max_len=32)
    assert not (unseen == tok.unk_id).any() and (unseen[0, :5] > 1).all()
    again = fit_tokenizer("bpe", TRAIN, vocab_size=300)
    assert again.to_json() == tok.to_json()
    # Encoding leaves no padding/truncation state in the serialised form.
    assert json.loads(tok.to_json())["tokenizer"]["padding"] is None


@pytest.mark.parametrize("kind,size", [("char", 20), ("bpe", 320)])
def test_tokenizer_json_round_trip(kind: str, size: int) -> None:
    tok = fit_tokenizer(kind, TRAIN, vocab_size=size)
    restored = tokenizer_from_json(tok.to_json())
    assert type(restored) is type(tok) and restored.vocab_size == tok.vocab_size
    probe = [*TRAIN[:4], "unseen words: zebra!", "x"]
    assert torch.equal(restored.encode(probe, 16), tok.encode(probe, 16))
    assert restored.to_json() == tok.to_json()


@pytest.mark.parametrize("kind,size", [("char", 200), ("bpe", 320)])
def test_decode_gives_back_the_text_without_padding(kind: str, size: int) -> None:
    tok = fit_tokenizer(kind, TRAIN, vocab_size=size)
    ids = tok.encode(TRAIN[:2], 200)
    for text, row in zip(TRAIN[:2], ids, strict=True):
        assert tok.pad_id in row.tolist()  # padded, and the padding is not shown
        assert tok.decode(row.tolist()).strip() == text


def test_tokenizer_errors() -> None:
    with pytest.raises(ValueError, match=r"'wordpiece'.*\['bpe', 'char'\]"):
        fit_tokenizer("wordpiece", TRAIN, 100)
    with pytest.raises(DataError, match=r"tok\.json: the tokenizer file is corrupt"):
        tokenizer_from_json("{not json", source="tok.json")
    with pytest.raises(DataError, match="corrupt"):
        tokenizer_from_json(json.dumps({"kind": "sentencepiece"}))
    with pytest.raises(DataError, match="corrupt"):
        tokenizer_from_json(json.dumps({"kind": "bpe", "format_version": 1, "tokenizer": 3}))
    char_json = fit_tokenizer("char", TRAIN, 20).to_json()
    with pytest.raises(DataError, match="mismatched"):
        tokenizer_from_json(char_json, expect_kind="bpe")
    with pytest.raises(ValueError, match="at least 258"):
        fit_tokenizer("bpe", TRAIN, 100)
    assert np.array_equal(
        tokenizer_from_json(char_json).encode(["cat"], 3).numpy(),
        fit_tokenizer("char", TRAIN, 20).encode(["cat"], 3).numpy(),
    )
