"""Streaming a series CSV from disk at two sizes 10x apart: memory, time to first step, throughput.

What is measured, and why
-------------------------
Generated data: a labelled wide CSV (a `label` column and `STEPS` values per row, 5 classes,
each a noisy sine of its own frequency; values written with 5 decimals), of `--megabytes`
(default 100 and 1,000 MB). For each size, `archlab-train data=sequence data.source=csv`
runs as a user runs it, in a subprocess, streaming (`data.in_memory=false`) a small GRU for
`--steps` steps of batch 128, plus `--eval-batches` validation and test batches (the same
number at both sizes), twice: with an empty cache directory (cold: the CSV is parsed once
into the cache of float32 records, the statistics are fitted on a sample of at most
`data.fit_sample` train series) and with the cache warm.

* peak memory, command to first step: as `bench.data` (PSS of all processes, RSS of the
  training process; TensorBoard's wall time of the first training loss).
* loader samples/s (warm cache): archlab's streamed train loader against two plain PyTorch
  `DataLoader`s with the same workers, batch size and shuffling, one example per
  `__getitem__`, collated, with the same standardisation: (a) over the first rows of the
  CSV parsed into a float32 array in memory (the loop a user writes for a CSV that fits);
  (b) over archlab's series cache as a numpy memmap (the loop a user writes around a cache of
  their own). Best of two alternating drains of `--batches` batches each.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.data import build_datamodule
from bench.data import compare_loaders, print_table, run_training

BATCH = 128
STEPS = 100
CLASSES = 5


def generate(path: Path, megabytes: int, seed: int = 0) -> None:
    """A CSV of about `megabytes` MB; kept when already complete."""
    done = path.with_suffix(".complete")
    if done.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(STEPS)
    written, target = 0, megabytes * 10**6
    with open(path, "w", encoding="utf-8") as f:
        f.write("label," + ",".join(f"t{i}" for i in range(STEPS)) + "\n")
        while written < target:
            labels = rng.integers(0, CLASSES, 5_000)
            values = np.sin(np.outer(labels + 1, t) * 0.1) + rng.normal(0, 0.5, (5_000, STEPS))
            block = "".join(
                f"c{c}," + ",".join(f"{v:.5f}" for v in row) + "\n"
                for c, row in zip(labels, values, strict=True)
            )
            f.write(block)
            written += len(block)
    done.write_text("")


def _args(table: Path, cache: Path, workers: int, eval_batches: int) -> list[str]:
    return [
        "data=sequence", "model=rnn", "model.cell=gru", "model.hidden_size=32",
        "data.source=csv", f"data.path={table}", "data.in_memory=false",
        f"data.cache_dir={cache}", f"data.num_workers={workers}", f"data.batch_size={BATCH}",
        f"trainer.limit_val_batches={eval_batches}", f"trainer.limit_test_batches={eval_batches}",
        "trainer.num_sanity_val_steps=0",
    ]  # fmt: skip


class PlainRows(Dataset):
    """The first rows of the CSV parsed into memory, standardised one row per `__getitem__`."""

    def __init__(self, table: Path, rows: int, transform: Any) -> None:
        values, self.labels = np.empty((rows, STEPS, 1), np.float32), []
        with open(table, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            next(reader)
            for i, row in zip(range(rows), reader, strict=False):
                values[i, :, 0] = np.array(row[1:], dtype=np.float32)
                self.labels.append(int(row[0][1:]))
        self.values, self.transform = values[: len(self.labels)], transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.values[i][None])[0], self.labels[i]


class PlainSeriesCache(Dataset):
    """The train split as a per-sample dataset over archlab's series cache (numpy memmap)."""

    def __init__(self, train: Any, transform: Any) -> None:
        cache = train.view.cache
        self.records, self.shape = cache.path / "records.bin", cache.shape
        self.index, self.labels, self.transform = train.view.index, train.labels, transform
        self.array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.array is None:
            self.array = np.memmap(self.records, np.float32, "r").reshape(-1, *self.shape)
        return self.transform(np.array(self.array[self.index[i]])[None])[0], int(self.labels[i])


def loaders(table: Path, cache: Path, workers: int, batches: int) -> dict[str, float]:
    cfg = validate(compose_config("train", tuple(_args(table, cache, workers, 1))))
    dm = build_datamodule(cfg.data, seed=0)
    dm.setup("fit")
    transform = dm.batch_transform()
    datasets = {
        "plain": PlainRows(table, 4 * BATCH * (batches + 10), transform),
        "plain_cache": PlainSeriesCache(dm.datasets["train"], transform),
    }
    return compare_loaders(dm.train_dataloader(), datasets, workers, batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval-batches", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batches", type=int, default=1500)
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "archlab-bench")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}, "
          f"workers: {args.workers}, steps: {args.steps} x batch {BATCH}")  # fmt: skip
    rows = []
    for size in args.megabytes:
        table = args.root / f"series{size}mb" / "series.csv"
        t = time.perf_counter()
        generate(table, size)
        with open(table, "rb") as f:
            count = sum(1 for _ in f) - 1
        print(f"{size} MB CSV ({count:,} series) ready ({time.perf_counter() - t:.0f} s)")
        cache = args.root / f"seriescache{size}mb"
        shutil.rmtree(cache, ignore_errors=True)
        runs = args.root / f"seriesruns{size}mb"
        shutil.rmtree(runs, ignore_errors=True)
        common = _args(table, cache, args.workers, args.eval_batches)
        cold = run_training(common, runs / "cold", args.steps)
        warm = run_training(common, runs / "warm", args.steps)
        rates = loaders(table, cache, args.workers, args.batches)
        rows.append((f"{size} MB ({count:,} series)", cold, warm, rates))
        print(f"  done: {size} MB", flush=True)
    print_table("CSV", "plain in memory", rows)


if __name__ == "__main__":
    main()
