"""Streaming series from disk: a series CSV (or a UCR dataset) read once, as it streams by,
into an on-disk cache of float32 records gives the same splits, statistics, tensors, batches
and trained metrics as the in-memory path; the cache is reused, rebuilt when a file or
setting changes, never trusted half-built; bad rows stop as in memory; a killed run resumes
exactly."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from streamed_resume import assert_resumes_exactly, streamed_datamodule
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_resume import _run, _start, _wait_for_saves

from archlab.data.streaming import StreamedInputs
from archlab.errors import ConfigError, DataError

QUIET = ("trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")
STEPS = 10


def make_csv(
    path: Path, rows: int = 240, features: int = 1, seed: int = 0, label: bool = True
) -> Path:
    """Three classes of series far from zero (mean ~100) whose level and slope tell the class;
    the label column in the middle, as users' files have it (none: values only)."""
    rng = np.random.default_rng(seed)
    names = [f"t{t}f{f}" for t in range(STEPS) for f in range(features)]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*names[:3], *(["label"] if label else []), *names[3:]])
        for _ in range(rows):
            c = int(rng.integers(3))
            values = 100 + c + 0.3 * c * np.arange(len(names)) + rng.normal(0, 1, len(names))
            cells = [f"{v:.5f}" for v in values]
            writer.writerow([*cells[:3], *([f"class{c}"] if label else []), *cells[3:]])
    return path


def make_ucr(root: Path, name: str = "Toy", seed: int = 2) -> Path:
    rng = np.random.default_rng(seed)
    (root / name).mkdir(parents=True)
    for split, rows in (("TRAIN", 90), ("TEST", 60)):
        lines = []
        for _ in range(rows):
            c = int(rng.integers(2))
            values = np.sin(np.arange(STEPS) * (1 + c)) + rng.normal(0, 0.2, STEPS)
            lines.append("\t".join([str(2 * c - 1), *(f"{v:.6f}" for v in values)]))
        (root / name / f"{name}_{split}.tsv").write_text("\n".join(lines) + "\n")
    return root / name


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("series")
    splits = root / "splits"
    splits.mkdir()
    make_csv(splits / "train.csv", 150, features=2, seed=3)
    make_csv(splits / "test.csv", 60, features=2, seed=4)
    return {
        "csv": make_csv(root / "s.csv"),
        "splits": splits,
        "ucr": make_ucr(root),
        "corpus": make_csv(root / "values.csv", 300, label=False),
    }


SOURCES = {
    "csv": ("data.source=csv",),
    "splits": ("data.source=csv", "data.num_features=2"),  # train.csv and test.csv, val carved
    "ucr": ("data.source=ucr",),
    "corpus": ("data.source=corpus", "task=forecast", "model=rnn", "data.max_examples=200"),
}


def _module(path: Path, cache: Path, source: str, *overrides: str):
    return streamed_datamodule(path, cache, "data=sequence", *SOURCES[source], *overrides)


@pytest.mark.parametrize("source", ["csv", "splits", "ucr", "corpus"])
def test_streamed_series_match_in_memory(data, tmp_path, capsys, source):
    path = data[source]
    memory = _module(path, tmp_path, source, "data.in_memory=true")
    assert "held in memory" in capsys.readouterr().err
    streamed = _module(path, tmp_path, source, "data.in_memory=false")
    said = capsys.readouterr().err
    assert "streamed from an on-disk cache by 1 loader worker(s)" in said and "built in" in said
    assert isinstance(streamed.tensors["train"][0], StreamedInputs)  # read on demand
    # Statistics fitted on the same train split (below data.fit_sample): bit for bit.
    assert streamed.fitted.keys() == memory.fitted.keys() >= {"classes", "mean", "std"}
    for key in ("mean", "std"):
        assert torch.equal(streamed.fitted[key], memory.fitted[key]), key
    assert streamed.classes == memory.classes and streamed.spec == memory.spec
    for split in ("train", "val", "test"):
        x_mem, y_mem = memory.tensors[split]
        x_str, y_str = streamed.tensors[split]
        assert len(y_mem) > 0 and torch.equal(y_str, y_mem), split  # same stratified split
        assert torch.equal(x_str[:], x_mem), split
    for loader in ("train_dataloader", "test_dataloader"):
        mine, theirs = list(getattr(streamed, loader)()), list(getattr(memory, loader)())
        assert len(mine) == len(theirs) > 0
        for (xa, ya), (xb, yb) in zip(mine, theirs, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_small_series_stay_in_memory_and_large_ones_stream(data, tmp_path, capsys, monkeypatch):
    dm = _module(data["csv"], tmp_path / "cache", "csv")
    assert isinstance(dm.tensors["train"][0], torch.Tensor)
    assert "0.0 MiB on disk (within 256 MiB): held in memory" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()  # nothing cached for in-memory data
    monkeypatch.setattr("archlab.data.sequence.SERIES_IN_MEMORY_LIMIT", 1 << 10)
    dm = _module(data["csv"], tmp_path / "cache", "csv")
    assert isinstance(dm.tensors["train"][0], StreamedInputs)
    assert "(over 0 MiB): streamed from an on-disk cache" in capsys.readouterr().err


def test_statistics_of_a_train_split_over_fit_sample_come_from_a_seeded_sample(data, tmp_path):
    whole = _module(data["csv"], tmp_path, "csv", "data.in_memory=false").fitted
    sampled = [
        _module(data["csv"], tmp_path, "csv", "data.in_memory=false", "data.fit_sample=20").fitted
        for _ in range(2)
    ]
    assert torch.equal(sampled[0]["mean"], sampled[1]["mean"])  # seeded: the same sample
    assert not torch.equal(sampled[0]["mean"], whole["mean"])  # 20 of 168 train series
    torch.testing.assert_close(sampled[0]["mean"], whole["mean"], atol=0.5, rtol=0)


def _said(capsys) -> str:
    """Whether the last set-up built or reused its cache."""
    line = next(x for x in capsys.readouterr().err.splitlines() if "data: cache " in x)
    return line.split("(")[-1].split()[0]


def test_cache_is_reused_and_rebuilt_when_a_file_or_setting_changes(tmp_path, capsys):
    path = make_csv(tmp_path / "s.csv", rows=60, features=2)
    cache = tmp_path / "cache"

    def run(*overrides: str):
        dm = _module(path, cache, "csv", "data.in_memory=false", *overrides)
        return _said(capsys), dm

    assert run()[0] == "built"
    assert run()[0] == "reused"
    said, dm = run("data.num_features=2")  # another record shape
    assert said == "built" and dm.spec.features == 2
    assert run("data.num_features=2", "data.split_seed=3")[0] == "reused"  # splits are views
    with open(path, "a", encoding="utf-8") as f:
        f.write((",".join(["7"] * 3 + ["class9"] + ["7"] * (2 * STEPS - 3)) + "\n") * 4)
    os.utime(path, ns=(1, 1))  # a new mtime even on a coarse-clock filesystem
    said, dm = run("data.test_fraction=0.3")
    assert said == "built" and "class9" in dm.classes  # the new row, not the old cache
    dirs = [p for p in cache.iterdir() if not p.name.endswith(".lock")]
    assert len(dirs) == 3 and all(p.name.startswith("series-csv-") for p in dirs)


_KILLED_BUILD = """
import os, signal, sys
from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.data import build_datamodule
from archlab.data.sources import series

parse = series._parse_values

def dies_midway(fields, names, path, line, *rest):
    if line > 100:
        os.kill(os.getpid(), signal.SIGKILL)
    return parse(fields, names, path, line, *rest)

series._parse_values = dies_midway
cfg = validate(compose_config("train", ("data=sequence", "data.source=csv", "model=rnn",
    f"data.path={sys.argv[1]}", f"data.cache_dir={sys.argv[2]}", "data.in_memory=false")))
build_datamodule(cfg.data, seed=0).setup("fit")
"""


def test_a_build_killed_midway_leaves_no_cache_that_is_trusted(data, tmp_path, capsys):
    cache = tmp_path / "cache"
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLED_BUILD), str(data["csv"]), str(cache)],
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -9, killed.stderr
    left = [p.name for p in cache.iterdir() if not p.name.endswith(".lock")]
    assert left and all(name.startswith(".tmp-series-csv-") for name in left)
    streamed = _module(data["csv"], cache, "csv", "data.in_memory=false")
    assert _said(capsys) == "built"  # the half-written directory was not taken for a cache
    memory = _module(data["csv"], cache, "csv", "data.in_memory=true")
    assert torch.equal(streamed.tensors["train"][0][:], memory.tensors["train"][0])
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp")]


def _bad_rows(path: Path) -> Path:
    lines = make_csv(path, rows=50).read_text().splitlines()
    fields = lines[40].split(",")  # line 41 of the file
    lines[40] = ",".join([*fields[:2], "abc", *fields[3:]])  # column t2f0
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("on_bad", ["stop", "skip"])
def test_a_bad_row_stops_naming_file_and_line_as_in_memory(tmp_path, on_bad):
    path = _bad_rows(tmp_path / "bad.csv")
    errors = {}
    for mode in ("true", "false"):
        with pytest.raises(DataError) as err:
            _module(
                path, tmp_path / "cache", "csv", f"data.in_memory={mode}", f"data.on_bad={on_bad}"
            )
        errors[mode] = str(err.value)
    assert errors["false"] == errors["true"]
    assert "bad.csv, line 41: column 't2f0' holds 'abc', which is not a number" in errors["false"]
    left = [p for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")]
    assert not left  # no cache, not even a half one


def test_split_files_of_different_lengths_are_one_clear_error(tmp_path):
    make_csv(tmp_path / "train.csv", rows=30)
    make_csv(tmp_path / "test.csv", rows=30, features=2)  # twice the columns
    with pytest.raises(DataError, match=r"train\.csv: series have length 10 .* test\.csv have"):
        _module(tmp_path, tmp_path / "cache", "csv", "data.in_memory=false")


def test_sources_that_cannot_stream_say_which_can(tmp_path):
    with pytest.raises(ConfigError, match=r"data.source=digits is read into memory.*series csv"):
        _module(tmp_path, tmp_path, "csv", "data.source=digits", "data.in_memory=false")


def test_cli_bad_row_is_one_error_line(tmp_path):
    path = _bad_rows(tmp_path / "bad.csv")
    result = run_cli(
        "archlab.train", "data=sequence", "model=rnn", "data.source=csv", f"data.path={path}",
        "data.in_memory=false", f"data.cache_dir={tmp_path / 'c'}",
        f"hydra.run.dir={tmp_path / 'run'}", *QUIET,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [x for x in result.stderr.splitlines() if x.startswith("archlab-train: error: ")]
    assert len(errors) == 1 and "bad.csv, line 41: column 't2f0'" in errors[0]
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_streamed_augmented_series_run_killed_mid_epoch_resumes_exactly(data, tmp_path):
    overrides = ("data=sequence", "data.source=csv", f"data.path={data['csv']}",
                 "data.batch_size=16", "data.augment.jitter=0.1", "data.augment.scale=0.1",
                 "data.augment.crop=0.8", "model=rnn", "model.hidden_size=16",
                 "model.dropout=0.2")  # fmt: skip
    seen, dm = assert_resumes_exactly(overrides, tmp_path, every=4, crash=7)
    assert len(seen.train) == 2 * -(-len(dm.datasets["train"]) // 16)
    first = dm.datasets["train"].__getitems__(list(range(len(dm.datasets["train"]))))[0]
    rows = {tuple(x.flatten().tolist()) for x in first}
    assert not any(tuple(x.flatten().tolist()) in rows for x in seen.train[0])  # augmented


@pytest.mark.slow
def test_streamed_series_train_to_the_same_metrics_and_dashboards_as_in_memory(data, tmp_path):
    common = ("data=sequence", "data.source=csv", f"data.path={data['csv']}", "model=rnn",
              "model.hidden_size=16", "data.batch_size=32", "trainer.max_epochs=2",
              "trainer.deterministic=true", f"data.cache_dir={tmp_path / 'cache'}",
              "data.num_workers=1", *QUIET)  # fmt: skip
    records, tags = {}, {}
    for mode in ("true", "false"):
        run = tmp_path / mode
        result = run_cli("archlab.train", *common, f"data.in_memory={mode}", f"hydra.run.dir={run}")
        assert result.returncode == 0, result.stderr[-3000:]
        records[mode] = json.loads((run / "metrics.json").read_text())
        events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
        events.Reload()
        tags[mode] = {kind: sorted(names) for kind, names in events.Tags().items() if names}
    assert "streamed from an on-disk cache" in result.stderr
    measured = [k for k in records["true"] if k.startswith(("val/", "test/"))]
    assert "test/acc" in measured
    for key in measured:
        assert records["false"][key] == pytest.approx(records["true"][key], abs=1e-6), key
    assert records["false"]["confusion_matrix"] == records["true"]["confusion_matrix"]
    assert tags["false"] == tags["true"] and tags["true"].get("images")  # same dashboards


@pytest.mark.slow
def test_a_streamed_series_run_killed_with_sigkill_resumes_to_the_same_metrics(data, tmp_path):
    overrides = ("data=sequence", "data.source=csv", f"data.path={data['csv']}",
                 "data.in_memory=false", f"data.cache_dir={tmp_path / 'cache'}",
                 "data.num_workers=1", "data.batch_size=16", "data.augment.jitter=0.1",
                 "model=rnn", "model.hidden_size=16", "model.dropout=0.2",
                 "trainer.max_epochs=30", "trainer.deterministic=true",
                 "callbacks.checkpoint.every_n_train_steps=2", *QUIET)  # fmt: skip
    reference = _run(tmp_path, *overrides, f"hydra.run.dir={tmp_path / 'a'}")
    assert reference.returncode == 0, reference.stderr[-3000:]
    run = tmp_path / "b"
    process = _start(tmp_path, *overrides, f"hydra.run.dir={run}")
    _wait_for_saves(run / "checkpoints" / "last.ckpt", process, saves=5)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert not (run / "metrics.json").exists(), "the run finished before it was killed"
    resumed = _run(tmp_path, *overrides, f"hydra.run.dir={run}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "reused in" in resumed.stderr  # the cache the killed run used
    expected = json.loads((tmp_path / "a" / "metrics.json").read_text())
    actual = json.loads((run / "metrics.json").read_text())
    measured = {k: v for k, v in expected.items() if "/" in k}
    assert "test/acc" in measured
    assert {k: v for k, v in actual.items() if "/" in k} == measured


@pytest.mark.slow
def test_streamed_series_ddp_counts_each_example_once_and_matches_one_process(data, tmp_path):
    # 3 full batches of 16 (8 per rank); 24 val and 48 test series: equal halves per rank.
    common = ("data=sequence", "data.source=csv", f"data.path={data['csv']}",
              "data.in_memory=false", f"data.cache_dir={tmp_path / 'c'}", "data.num_workers=1",
              "model=rnn", "model.hidden_size=16", "model.dropout=0", "trainer.max_epochs=1",
              "logger=none", "trainer.limit_train_batches=3", *QUIET)  # fmt: skip
    records = {}
    for name, extra in (
        ("one", ("trainer=cpu", "data.batch_size=16")),
        ("two", ("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                 "data.batch_size=8")),
    ):  # fmt: skip
        run = tmp_path / name
        result = run_cli("archlab.train", *common, *extra, f"hydra.run.dir={run}")
        assert result.returncode == 0, result.stderr[-3000:]
        records[name] = json.loads((run / "metrics.json").read_text())
    for split, count in (("val", 24), ("test", 48)):
        counts = [sum(map(sum, records[r]["confusion_matrix"][split])) for r in records]
        assert counts == [count, count], split
    for key, value in records["one"].items():
        if key.startswith(("val/", "test/")):
            assert records["two"][key] == pytest.approx(value, abs=1e-5), key
