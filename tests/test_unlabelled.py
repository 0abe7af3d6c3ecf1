"""Unlabelled sources (text corpus, image folder, series CSV, built-in corpora) feed the
self-supervised objectives; a classifier asked to learn from one is refused in one line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.data import build_datamodule
from archlab.data.sources.corpus import iter_corpus, iter_python_docs
from archlab.data.sources.glyphs import generate_glyphs
from archlab.data.sources.texts import load_stdlib_docstrings
from archlab.errors import ConfigError, DataError
from archlab.run.stages import stage_config


def _data(*overrides: str):
    return stage_config(validate(compose_config("train", list(overrides))), None).data


def _setup(*overrides: str):
    datamodule = build_datamodule(_data(*overrides))
    datamodule.setup("fit")
    return datamodule


def _count(datamodule) -> int:
    return sum(len(datamodule.tensors[s][0]) for s in ("train", "val", "test"))


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("first line\nsecond line\n\nthird line\n", encoding="utf-8")
    with gzip.open(root / "sub" / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write("gz one\ngz two\n")
    lines = [{"text": "json doc"}, {"text": "   "}, {"text": "another json doc", "id": 3}]
    (root / "sub" / "c.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (root / "notes.md").write_text("not part of the corpus\n")
    return root


def test_a_corpus_has_one_document_per_line_or_per_blank_line_block(corpus_dir: Path) -> None:
    by_line = list(iter_corpus(corpus_dir, "line"))
    assert by_line == [
        "first line", "second line", "third line", "gz one", "gz two", "json doc",
        "another json doc",
    ]  # fmt: skip
    by_block = list(iter_corpus(corpus_dir / "a.txt", "block"))
    assert by_block == ["first line\nsecond line", "third line"]


def test_a_corpus_file_with_bad_bytes_or_no_text_field_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nnot \xff utf-8\n")
    with pytest.raises(DataError, match=r"bad.txt, line 2: .*not valid UTF-8"):
        list(iter_corpus(bad))
    table = tmp_path / "t.jsonl"
    table.write_text('{"body": "x"}\n')
    with pytest.raises(DataError, match=r"t.jsonl, line 1: no string field 'text'.*body"):
        list(iter_corpus(table))
    (tmp_path / "x.csv").write_text("a\n")
    with pytest.raises(DataError, match=r"x\.csv: unsupported corpus file"):
        list(iter_corpus(tmp_path / "x.csv"))


def test_the_text_corpus_source_serves_every_document_to_a_language_model(
    corpus_dir: Path,
) -> None:
    datamodule = _setup(
        "data=text", "task=mlm", "data.source=corpus", f"data.path={corpus_dir}",
        "data.tokenizer=char", "data.val_fraction=0.15", "data.test_fraction=0.15",
    )  # fmt: skip
    assert _count(datamodule) == 7
    assert datamodule.classes == ["-"]
    capped = _setup(
        "data=text", "task=lm", "model=transformer", "data.source=corpus",
        f"data.path={corpus_dir}", "data.tokenizer=char", "data.max_examples=4",
        "data.val_fraction=0.25", "data.test_fraction=0.25",
    )  # fmt: skip
    assert _count(capped) == 4


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 6), value, dtype=np.uint8)).save(path)


def test_an_image_corpus_reads_a_flat_folder_or_class_folders_ignoring_their_names(
    tmp_path: Path,
) -> None:
    for i in range(6):
        _png(tmp_path / "flat" / f"{i}.png", 40 * i)
        _png(tmp_path / "classes" / ("cat" if i % 2 else "dog") / f"{i}.png", 40 * i)
    for layout in ("flat", "classes"):
        datamodule = _setup(
            "task=reconstruct", "data.source=corpus", f"data.path={tmp_path / layout}",
            "data.val_fraction=0.2", "data.test_fraction=0.2",
        )  # fmt: skip
        assert _count(datamodule) == 6
        assert datamodule.classes == ["-"]
        assert datamodule.spec.channels == 1 and datamodule.spec.height == 6


def test_a_series_corpus_is_a_csv_without_a_label_column(tmp_path: Path) -> None:
    csv = tmp_path / "series.csv"
    rows = ["t0a,t0b,t1a,t1b,t2a,t2b"] + [",".join(str(i + j) for j in range(6)) for i in range(10)]
    csv.write_text("\n".join(rows) + "\n")
    datamodule = _setup(
        "data=sequence", "model=rnn", "task=forecast", "data.source=corpus", f"data.path={csv}",
        "data.num_features=2",
    )  # fmt: skip
    assert _count(datamodule) == 10
    assert (datamodule.spec.length, datamodule.spec.features) == (3, 2)


def test_generated_glyphs_are_digit_shaped_and_reproducible() -> None:
    glyphs = generate_glyphs(300, seed=1)
    assert glyphs.shape == (300, 1, 8, 8) and glyphs.dtype == np.float32
    assert glyphs.min() == 0 and glyphs.max() == 16  # counts of a 4x4 block, like the digits
    assert np.array_equal(glyphs, generate_glyphs(300, seed=1))
    assert not np.array_equal(glyphs, generate_glyphs(300, seed=2))
    assert len(np.unique(glyphs.reshape(300, -1), axis=0)) == 300


def test_python_docs_leave_out_the_labelled_packages_and_their_texts() -> None:
    held_out = load_stdlib_docstrings(["json"])[0]
    docs = []
    for doc in iter_python_docs(exclude=["json"], held_out=held_out):
        docs.append(doc)
        if len(docs) == 400:
            break
    assert len(docs) == 400 and len(set(docs)) == 400
    assert not set(docs) & set(held_out)
    assert all(len(doc) >= 40 for doc in docs)


@pytest.mark.parametrize(
    "overrides",
    [
        ["data=text", "data.source=corpus", "data.path=x.txt"],
        ["data=text", "data.source=python_docs"],
        ["data=image", "data.source=corpus", "data.path=x"],
        ["data=image", "data.source=glyphs"],
        ["data=sequence", "data.source=corpus", "data.path=x.csv"],
        ["data=sequence", "data.source=glyphs"],
    ],
)
def test_a_classifier_on_an_unlabelled_source_is_refused(overrides: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        validate(compose_config("train", ["task=classify", *overrides]))
    message = str(caught.value)
    source = overrides[1].split("=", 1)[1]
    assert f"data.source={source} has no labels" in message
    assert "pretrain.data.source" in message


def test_the_cli_refuses_a_classifier_on_a_corpus_in_one_line(train_cli, tmp_path: Path) -> None:
    result, run_dir = train_cli("data=text", "data.source=corpus", f"data.path={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("archlab-train: error: data.source=corpus has no labels")
    assert not run_dir.exists()
