"""Streaming a text corpus from disk at two sizes 10x apart: memory, time to first step, throughput.

What is measured, and why
-------------------------
Generated data: a `.txt` corpus, one document per line (5-40 words drawn from a Zipf law over
5,000 made-up words), of `--megabytes` (default 20 and 200 MB). For each size,
`archlab-train task=lm data.source=corpus` runs as a user runs it, in a subprocess, streaming
(`data.in_memory=false`) a small causal Transformer for `--steps` steps of batch 64, plus
`--eval-batches` validation and test batches (the same number at both sizes, so that the
evaluation time does not grow with the held-out split), twice: with an empty cache directory
(cold: the documents are copied into the cache, the BPE tokenizer is fitted on a sample of
at most `data.fit_sample` train documents, every document is tokenized) and with the cache warm.

* peak memory: the largest sum of the proportional set size (PSS) of the training process and
  its children (loader workers), sampled every 0.1 s, and the peak resident memory (RSS) of
  the training process alone (as `bench.data`).
* command to first step: from starting the command to the wall time TensorBoard records for
  the first training step's loss.
* loader samples/s (warm cache): archlab's streamed train loader against two plain PyTorch
  `DataLoader`s with the same workers, batch size and shuffling, one example per
  `__getitem__`, collated: (a) over the train documents held in a Python list, each
  tokenized by the same fitted tokenizer in `__getitem__` (the loop a user writes for text
  that fits in memory); (b) over archlab's token cache as a numpy memmap with the same
  transform (the loop a user writes around a token cache of their own). Best of two
  alternating drains of `--batches` batches each.
"""

from __future__ import annotations

import argparse
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

BATCH = 64
WORDS = 5_000


def generate(path: Path, megabytes: int, seed: int = 0) -> None:
    """A corpus of about `megabytes` MB, one document per line; kept when already complete."""
    done = path.with_suffix(".complete")
    if done.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    letters = np.array(list("etaoinshrdlucmfwypvbgkjqxz"))
    vocab = ["".join(rng.choice(letters, rng.integers(2, 9))) for _ in range(WORDS)]
    weights = 1 / np.arange(1, WORDS + 1)
    weights /= weights.sum()
    written, target = 0, megabytes * 10**6
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            ids = rng.choice(WORDS, (10_000, 40), p=weights)
            lengths = rng.integers(5, 41, 10_000)
            block = "".join(
                " ".join(vocab[i] for i in row[:n]) + "\n"
                for row, n in zip(ids, lengths, strict=True)
            )
            f.write(block)
            written += len(block)
    done.write_text("")


def _args(corpus: Path, cache: Path, workers: int, eval_batches: int) -> list[str]:
    return [
        "data=text", "task=lm", "data.source=corpus", f"data.path={corpus}",
        "data.in_memory=false", f"data.cache_dir={cache}", f"data.num_workers={workers}",
        f"data.batch_size={BATCH}", "data.max_length=128",
        "model=transformer", "model.d_model=64", "model.num_layers=2",
        f"trainer.limit_val_batches={eval_batches}", f"trainer.limit_test_batches={eval_batches}",
        "trainer.num_sanity_val_steps=0",
    ]  # fmt: skip


class PlainTokenizing(Dataset):
    """Documents in a list, each tokenized in `__getitem__` by the run's tokenizer."""

    def __init__(self, docs: list[str], tokenizer: Any, length: int) -> None:
        self.docs, self.tokenizer, self.length = docs, tokenizer, length

    def __len__(self) -> int:
        return len(self.docs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.tokenizer.encode([self.docs[i]], self.length)[0], 0


class PlainTokenCache(Dataset):
    """The train split as a per-sample dataset over archlab's token cache (numpy memmap)."""

    def __init__(self, train: Any, transform: Any) -> None:
        cache = train.view.cache
        self.records, self.shape, self.dtype = cache.path / "records.bin", cache.shape, cache.dtype
        self.index, self.transform = train.view.index, transform
        self.array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.array is None:
            self.array = np.memmap(self.records, self.dtype, "r").reshape(-1, *self.shape)
        return self.transform(self.array[self.index[i]][None])[0], 0


def loaders(corpus: Path, cache: Path, workers: int, batches: int) -> dict[str, float]:
    cfg = validate(compose_config("train", tuple(_args(corpus, cache, workers, 1))))
    dm = build_datamodule(cfg.data, seed=0)
    dm.setup("fit")
    train = dm.datasets["train"]
    store_docs = 20 * BATCH * (batches + 10)  # enough distinct documents for the drains
    docs = corpus.read_text(encoding="utf-8").splitlines()[:store_docs]
    datasets = {
        "plain": PlainTokenizing(docs, dm.tokenizer, dm.fitted["length"]),
        "plain_cache": PlainTokenCache(train, dm.batch_transform()),
    }
    return compare_loaders(dm.train_dataloader(), datasets, workers, batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, nargs="+", default=[20, 200])
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
        corpus = args.root / f"corpus{size}mb" / "docs.txt"
        t = time.perf_counter()
        generate(corpus, size)
        with open(corpus, "rb") as f:
            lines = sum(1 for _ in f)
        print(f"{size} MB corpus ({lines:,} documents) ready ({time.perf_counter() - t:.0f} s)")
        cache = args.root / f"textcache{size}mb"
        shutil.rmtree(cache, ignore_errors=True)
        runs = args.root / f"textruns{size}mb"
        shutil.rmtree(runs, ignore_errors=True)
        common = _args(corpus, cache, args.workers, args.eval_batches)
        cold = run_training(common, runs / "cold", args.steps)
        warm = run_training(common, runs / "warm", args.steps)
        rates = loaders(corpus, cache, args.workers, args.batches)
        rows.append((f"{size} MB ({lines:,} docs)", cold, warm, rates))
        print(f"  done: {size} MB", flush=True)
    print_table("corpus", "plain tokenizing", rows)


if __name__ == "__main__":
    main()
