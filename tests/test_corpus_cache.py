"""The built-in python_docs corpus is extracted once, then read from the data cache: the same
documents, a changed environment extracts again, a corrupt file is rebuilt with one line said,
and a run that stops early caches nothing."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import pytest

from archlab.data.corpus_cache import cache_path, cached_documents
from archlab.data.sources import corpus

DOCS = ["first doc", "second doc with ünïcode", 'a "quoted" one\nwith a newline']


class Extraction:
    """Counts how often the expensive extraction ran."""

    def __init__(self, docs: list[str]) -> None:
        self.docs, self.runs = docs, 0

    def __call__(self):
        self.runs += 1
        yield from self.docs


def test_the_second_load_reads_the_cache_and_a_changed_key_extracts_again(tmp_path: Path) -> None:
    said: list[str] = []
    extract = Extraction(DOCS)
    path = cache_path(tmp_path, "python_docs", {"python": "3.11.0", "packages": ["json"]})
    assert list(cached_documents(path, extract, said.append)) == DOCS
    assert path.is_file() and extract.runs == 1 and len(said) == 1
    assert list(cached_documents(path, extract, said.append)) == DOCS
    assert extract.runs == 1 and len(said) == 1  # read back silently
    other = cache_path(tmp_path, "python_docs", {"python": "3.11.1", "packages": ["json"]})
    assert other != path
    assert list(cached_documents(other, extract, said.append)) == DOCS and extract.runs == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b.replace(b"second", b"SECOND"),  # altered after it was written
        lambda b: b"",
        lambda b: b"\xff\xfe not json\n",
    ],
)
def test_a_corrupt_cache_is_said_in_one_line_and_rebuilt(tmp_path: Path, damage) -> None:
    extract = Extraction(DOCS)
    path = cache_path(tmp_path, "python_docs", {"k": 1})
    list(cached_documents(path, extract, lambda _: None))
    path.write_bytes(damage(path.read_bytes()))
    said: list[str] = []
    assert list(cached_documents(path, extract, said.append)) == DOCS and extract.runs == 2
    assert len(said) == 2 and "unreadable" in said[0] and str(path) in said[0]
    assert list(cached_documents(path, extract, said.append)) == DOCS and extract.runs == 2


def test_a_consumer_that_stops_early_leaves_no_cache(tmp_path: Path) -> None:
    path = cache_path(tmp_path, "python_docs", {"k": 1})
    documents = cached_documents(path, Extraction(DOCS), lambda _: None)
    assert list(islice(documents, 2)) == DOCS[:2]
    documents.close()
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_cache_dir_still_serves_the_documents(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    said: list[str] = []
    path = cache_path(blocker / "cache", "python_docs", {"k": 1})
    assert list(cached_documents(path, Extraction(DOCS), said.append)) == DOCS
    assert len(said) == 1 and "cannot write" in said[0]


def test_the_fingerprint_changes_with_the_extraction_code(tmp_path: Path) -> None:
    code = tmp_path / "extract.py"
    code.write_text("v = 1\n")
    before = corpus.python_docs_fingerprint([code])
    assert before["python"] and before["distributions"]  # pytest itself is installed
    code.write_text("v = 2\n")
    assert corpus.python_docs_fingerprint([code]) != before


def test_the_python_docs_source_reads_its_cache_the_second_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installed sources stood in for by a small tree; deleted after the first load, so the
    second can only have read the cache."""
    from archlab.config.preflight import compose_config
    from archlab.config.validate import validate
    from archlab.data import build_datamodule

    tree = tmp_path / "site"
    (tree / "pkg").mkdir(parents=True)
    for i in range(30):
        (tree / "pkg" / f"m{i}.py").write_text(
            f'"""Module number {i} explains how the widgets of this package are wound up."""\n'
            f"# A comment block long enough to be kept as a document, number {i}.\n"
        )
    monkeypatch.setattr(corpus, "python_roots", lambda: [tree])
    overrides = [
        "data=text", "task=lm", "model=transformer", "data.source=python_docs",
        "data.packages=[]", f"data.cache_dir={tmp_path / 'cache'}", "data.tokenizer=char",
    ]  # fmt: skip
    cfg = validate(compose_config("train", overrides)).data
    first = build_datamodule(cfg)
    first.setup("fit")
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".jsonl"]
    for file in (tree / "pkg").iterdir():
        file.unlink()
    second = build_datamodule(cfg)
    second.setup("fit")
    for split in ("train", "val", "test"):
        assert first.tensors[split][0].equal(second.tensors[split][0])
    assert sum(len(first.tensors[s][0]) for s in ("train", "val", "test")) == 60
