"""Streaming text from disk: a csv/jsonl table or a corpus copied once into an on-disk cache of
documents, tokenized into a cache of token ids after fitting, gives the same splits,
tokenizer, token ids, batches and trained metrics as the in-memory path; the caches are
reused, rebuilt when a file or setting changes, and never trusted half-built."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from streamed_resume import assert_resumes_exactly, streamed_datamodule

from archlab.data.streaming import StreamedInputs

QUIET = ("trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")
WORDS = {
    "pos": ["good", "great", "fine", "happy", "nice", "lovely", "the", "a", "movie"],
    "neg": ["bad", "awful", "poor", "sad", "ugly", "grim", "the", "a", "movie"],
}


def make_table(path: Path, rows: int = 240, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for _ in range(rows):
            label = str(rng.choice(["pos", "neg"]))
            words = rng.choice(WORDS[label], rng.integers(3, 14))
            writer.writerow([" ".join(words), label])
    return path


def make_corpus(path: Path, lines: int = 300, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    vocab = [
        "the",
        "cat",
        "sat",
        "on",
        "a",
        "mat",
        "and",
        "the",
        "dog",
        "ran",
        "far",
        "away",
        "from",
        "it",
    ]
    path.write_text(
        "".join(" ".join(rng.choice(vocab, rng.integers(2, 25))) + "\n" for _ in range(lines)),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("texts")
    return {"csv": make_table(root / "reviews.csv"), "corpus": make_corpus(root / "docs.txt")}


SOURCES = {
    "csv": ("data.source=csv",),
    "corpus": ("data.source=corpus", "task=lm", "model=transformer"),
}


def _module(path: Path, cache: Path, source: str, *overrides: str):
    return streamed_datamodule(path, cache, "data=text", *SOURCES[source], *overrides)


@pytest.mark.parametrize(("source", "tokenizer"), [("csv", "bpe"), ("corpus", "char")])
def test_streamed_text_matches_in_memory(data, tmp_path, capsys, source, tokenizer):
    path = data[source]
    memory = _module(path, tmp_path, source, f"data.tokenizer={tokenizer}", "data.in_memory=true")
    assert "held in memory" in capsys.readouterr().err
    streamed = _module(
        path, tmp_path, source, f"data.tokenizer={tokenizer}", "data.in_memory=false"
    )
    assert "streamed from an on-disk cache" in capsys.readouterr().err
    assert isinstance(streamed.tensors["train"][0], StreamedInputs)  # nothing held in memory
    assert streamed.fitted == memory.fitted  # tokenizer (fitted on the train split), length
    assert streamed.spec == memory.spec
    for split in ("train", "val", "test"):
        x_mem, y_mem = memory.tensors[split]
        x_str, y_str = streamed.tensors[split]
        assert torch.equal(y_str, y_mem), split
        assert torch.equal(x_str[:], x_mem), split
    mine, theirs = list(streamed.train_dataloader()), list(memory.train_dataloader())
    assert len(mine) == len(theirs) > 1
    for (xa, ya), (xb, yb) in zip(mine, theirs, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_auto_choice_keeps_small_text_in_memory(data, tmp_path, capsys):
    dm = _module(data["csv"], tmp_path / "cache", "csv")
    assert isinstance(dm.tensors["train"][0], torch.Tensor)
    assert "within 128 MiB): held in memory" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


_SAID: dict[str, str] = {}


def _said(capsys, what: str, again: bool = False) -> str:
    """What the last set-up did with the `what` cache: read, built or reused."""
    if not again:
        _SAID["err"] = capsys.readouterr().err
    line = next(x for x in _SAID["err"].splitlines() if f"data: {what} " in x)
    return line.split("(")[-1].split()[0]


def test_text_caches_are_reused_and_rebuilt_when_a_file_or_setting_changes(tmp_path, capsys):
    path = make_corpus(tmp_path / "docs.txt")
    cache = tmp_path / "cache"

    def run(*overrides: str) -> tuple[str, str]:
        _module(path, cache, "corpus", "data.in_memory=false", *overrides)
        return _said(capsys, "documents"), _said(capsys, "token ids", again=True)

    assert run() == ("read", "built")
    assert run() == ("reused", "reused")
    assert run("data.tokenizer=char") == ("reused", "built")  # another tokenizer
    assert run("data.max_length=32") == ("reused", "built")
    assert run("data.max_examples=100") == ("read", "built")
    with open(path, "a", encoding="utf-8") as f:
        f.write("a new line the tokenizer has never seen zebra\n")
    os.utime(path, ns=(1, 1))  # a new mtime even on a coarse-clock filesystem
    assert run() == ("read", "built")
    dirs = sorted(p.name.split("-")[1] for p in cache.iterdir() if not p.name.endswith(".lock"))
    assert dirs == ["docs"] * 3 + ["tokens"] * 5


_KILLED_BUILD = """
import os, signal, sys
from pathlib import Path
from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.data import build_datamodule, text_cache

text_cache._CHUNK = 16
read_range = text_cache.DocumentStore.read_range

def dies_midway(self, start, stop):
    if start >= 64:
        os.kill(os.getpid(), signal.SIGKILL)
    return read_range(self, start, stop)

text_cache.DocumentStore.read_range = dies_midway
cfg = validate(compose_config("train", ("data=text", "data.source=corpus", "task=lm", "model=rnn",
    f"data.path={sys.argv[1]}", f"data.cache_dir={sys.argv[2]}", "data.in_memory=false")))
build_datamodule(cfg.data, seed=0).setup("fit")
"""


def test_a_tokenizing_run_killed_midway_leaves_no_cache_that_is_trusted(data, tmp_path, capsys):
    cache = tmp_path / "cache"
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLED_BUILD), str(data["corpus"]), str(cache)],
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -9, killed.stderr
    left = sorted(p.name.split("-")[0:2] for p in cache.iterdir() if ".lock" not in p.name)
    assert left == [[".tmp", "corpus"], ["corpus", "docs"]]  # documents done, tokens not
    streamed = _module(data["corpus"], cache, "corpus", "data.in_memory=false")
    assert (_said(capsys, "documents"), _said(capsys, "token ids", again=True)) == (
        "reused",
        "built",
    )
    memory = _module(data["corpus"], cache, "corpus", "data.in_memory=true")
    assert torch.equal(streamed.tensors["train"][0][:], memory.tensors["train"][0])
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp")]


@pytest.mark.slow
def test_streamed_lm_trains_to_the_same_metrics_as_in_memory(data, tmp_path):
    common = ("data=text", "data.source=corpus", f"data.path={data['corpus']}", "task=lm",
              "data.tokenizer=char", "model=transformer", "model.d_model=16", "model.ff_dim=32",
              "model.num_layers=1", "model.num_heads=2", "data.batch_size=32",
              "trainer.max_steps=6", f"data.cache_dir={tmp_path / 'cache'}", "data.num_workers=1",
              *QUIET)  # fmt: skip
    records = {}
    for mode in ("true", "false"):
        run = tmp_path / mode
        result = run_cli("archlab.train", *common, f"data.in_memory={mode}", f"hydra.run.dir={run}")
        assert result.returncode == 0, result.stderr[-3000:]
        records[mode] = json.loads((run / "metrics.json").read_text())
    assert "streamed from an on-disk cache" in result.stderr
    measured = [k for k in records["true"] if k.startswith(("val/", "test/"))]
    assert "test/loss" in measured
    for key in measured:
        assert records["false"][key] == pytest.approx(records["true"][key], abs=1e-5), key


def test_a_streamed_text_run_killed_mid_epoch_resumes_exactly(data, tmp_path):
    overrides = ("data=text", "data.source=csv", f"data.path={data['csv']}", "data.batch_size=16",
                 "data.augment.token_dropout=0.1", "model=rnn", "model.hidden_size=16",
                 "model.dropout=0.2")  # fmt: skip
    assert_resumes_exactly(overrides, tmp_path, every=4, crash=6)
