"""Streaming from disk at two dataset sizes 10x apart: memory, time to first step, throughput.

What is measured, and why
-------------------------
Generated data: small RGB PNGs (32x32, 10 class folders; each class a colour with noise), at
`--sizes` (default 20,000 and 200,000 images). For each size, `archlab-train` runs as a user
runs it, in a subprocess, streaming (`data.in_memory=false`) a small CNN for `--steps` steps
of batch 128 plus its validation and test passes, twice: with an empty cache directory (cold:
the images are decoded and written into the cache first) and again with the cache warm.

* peak memory: the largest sum of the proportional set size (PSS: each shared page split
  among the processes sharing it) of the training process and its children (loader
  workers, cache builders), sampled from /proc every 0.1 s; and the peak resident memory
  (RSS) of the training process alone. The target: flat across the two sizes, under 2 GB.
* command to first step: from starting the command to the wall time TensorBoard records for
  the first training step's loss (`trainer.log_every_n_steps=1`).
* loader samples/s (warm cache): archlab's streamed train loader (the one `archlab-train`
  builds: same sampler, workers, batch size) against two plain PyTorch `DataLoader`s with
  the same number of workers, batch size and shuffling, each fetching one example per
  `__getitem__` and collating: (a) over an ImageFolder-style dataset that decodes each PNG
  with PIL and applies the same transform (to float, standardise with the same statistics):
  the loop a user would otherwise write; (b) over archlab's own cache file as a numpy
  memmap with the same transform: the loop a user would write around a cache of their own.
  Each is drained for `--batches` batches, twice, alternating the order; the better run of
  each is kept. The target is archlab/plain >= 0.9.

The machine the README figures come from has 2 cores shared with other jobs: wall times are
noisy, the ratios are measured within one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator as ea
from torch.utils.data import DataLoader, Dataset

from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.data import build_datamodule
from archlab.data.sources.images import list_image_folder

CLASSES = 10
SIDE = 32
BATCH = 128


def generate(root: Path, count: int, seed: int = 0) -> None:
    """`count` PNGs in CLASSES folders; skipped when a complete set is already there."""
    done = root / ".complete"
    if done.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 215, (CLASSES, 3))
    for c in range(CLASSES):
        (root / f"class{c}").mkdir(parents=True)
    for i in range(count):
        c = i % CLASSES
        pixels = np.clip(colours[c] + rng.integers(-40, 41, (SIDE, SIDE, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(root / f"class{c}" / f"{i:07d}.png")
    done.write_text("")


def _tree_memory(pid: int) -> tuple[int, int]:
    """(PSS of `pid` and all its descendants, RSS of `pid` alone) in bytes. PSS splits each
    shared page among the processes sharing it, so forked workers are not counted twice."""
    total, main, stack = 0, 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                    elif line.startswith("Rss:") and p == pid:
                        main = int(line.split()[1]) * 1024
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total, main


def train(folder: Path, cache: Path, run: Path, steps: int, workers: int) -> dict[str, float]:
    """One streamed `archlab-train` run on an image folder (see `run_training`)."""
    args = [
        "data.source=folder", f"data.path={folder}", "data.channels=3", "data.in_memory=false",
        f"data.cache_dir={cache}", f"data.num_workers={workers}", f"data.batch_size={BATCH}",
        "model.channels=[16,32]", "model.fc_dims=[64]",
    ]  # fmt: skip
    return run_training(args, run, steps)


def run_training(overrides: list[str], run: Path, steps: int) -> dict[str, float]:
    """One `archlab-train` run with `overrides` for `steps` steps: its peak memory (PSS of all
    its processes, RSS of the training process) and the time to its first step."""
    args = [
        sys.executable, "-m", "archlab.train", *overrides, f"trainer.max_steps={steps}",
        "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run}",
    ]  # fmt: skip
    start = time.time()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0, 0]

    def sample() -> None:
        while proc.poll() is None:
            peak[:] = map(max, peak, _tree_memory(proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, err = proc.communicate()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"archlab-train failed:\n{err[-3000:]}")
    events = ea.EventAccumulator(str(run / "tensorboard"), size_guidance={ea.SCALARS: 0})
    loss = events.Reload().Scalars("train/loss")
    return {"pss": peak[0], "rss": peak[1], "first_step": loss[0].wall_time - start}


class PlainImageFolder(Dataset):
    """What a user writes without archlab: decode and transform each PNG in `__getitem__`."""

    def __init__(self, folder: Path, mean: torch.Tensor, std: torch.Tensor) -> None:
        paths, labels = list_image_folder(folder, 3)
        names = sorted(set(labels))
        self.paths, self.labels = paths, [names.index(n) for n in labels]
        self.mean, self.std = mean[:, None, None], std[:, None, None]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[i]) as img:
            x = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy())
        x = x.permute(2, 0, 1).float()
        return (x - self.mean) / self.std, self.labels[i]


class PlainCache(Dataset):
    """The train split as a per-sample dataset over archlab's cache file (a numpy memmap)
    with the same transform: the loop a user would write around a cache of their own."""

    def __init__(self, train: Any, transform: Any) -> None:
        cache = train.view.cache
        self.records, self.shape = cache.path / "records.bin", cache.shape
        self.index, self.labels, self.transform = train.view.index, train.labels, transform
        self.array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.array is None:
            self.array = np.memmap(self.records, np.uint8, "r").reshape(-1, *self.shape)
        return self.transform(self.array[self.index[i]][None])[0], int(self.labels[i])


def _batches(loader: DataLoader):
    """Batches of `loader`, epoch after epoch."""
    while True:
        yield from loader


def _drain(loader: DataLoader, batches: int) -> float:
    """Samples per second over `batches` batches, after 5 warm-up batches."""
    it = _batches(loader)
    for _ in range(5):
        next(it)
    start, samples = time.perf_counter(), 0
    for _ in range(batches):
        samples += len(next(it)[1])
    return samples / (time.perf_counter() - start)


def compare_loaders(
    ours: DataLoader, datasets: dict[str, Any], workers: int, batches: int
) -> dict[str, float]:
    """Best samples/s of archlab's loader and a plain DataLoader over each dataset, drained in
    both orders so that neither side always runs first."""
    loaders = {"archlab": ours}
    for name, data in datasets.items():
        loaders[name] = DataLoader(
            data, BATCH, shuffle=True, num_workers=workers, persistent_workers=workers > 0
        )
    best = dict.fromkeys(loaders, 0.0)
    for order in (list(loaders), list(loaders)[::-1]):
        for name in order:
            best[name] = max(best[name], _drain(loaders[name], batches))
    return best


def loaders(folder: Path, cache: Path, workers: int, batches: int) -> dict[str, float]:
    cfg = validate(
        compose_config(
            "train",
            (
                "data.source=folder",
                f"data.path={folder}",
                "data.channels=3",
                "data.in_memory=false",
                f"data.cache_dir={cache}",
                f"data.num_workers={workers}",
                f"data.batch_size={BATCH}",
            ),
        )
    )
    dm = build_datamodule(cfg.data, seed=0)
    dm.setup("fit")
    ours = dm.train_dataloader()
    datasets = {
        "plain": PlainImageFolder(folder, dm.fitted["mean"], dm.fitted["std"]),
        "plain_cache": PlainCache(dm.datasets["train"], dm.batch_transform()),
    }
    return compare_loaders(ours, datasets, workers, batches)


def print_table(data: str, plain: str, rows: list[tuple[str, dict, dict, dict]]) -> None:
    """The README table of the data benches: one row per (label, cold run, warm run, loader
    rates); `data` heads the first column, `plain` names the loop archlab is compared to."""
    print()
    print(f"| {data} | peak memory (PSS, all processes) cold / warm | main process RSS warm "
          f"| command to first step cold / warm | loader samples/s: archlab / {plain} "
          "/ plain on the same cache | ratios |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|")
    for label, cold, warm, rates in rows:
        print(
            f"| {label} | {cold['pss'] / 2**30:.2f} / {warm['pss'] / 2**30:.2f} GiB "
            f"| {warm['rss'] / 2**30:.2f} GiB "
            f"| {cold['first_step']:.1f} / {warm['first_step']:.1f} s "
            f"| {rates['archlab']:,.0f} / {rates['plain']:,.0f} / {rates['plain_cache']:,.0f} "
            f"| {rates['archlab'] / rates['plain']:.2f} / "
            f"{rates['archlab'] / rates['plain_cache']:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batches", type=int, default=1500)
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "archlab-bench")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}, "
          f"workers: {args.workers}, steps: {args.steps} x batch {BATCH}")  # fmt: skip
    rows = []
    for size in args.sizes:
        folder = args.root / f"png{size}"
        t = time.perf_counter()
        generate(folder, size)
        print(f"{size:,} PNGs ready in {folder} ({time.perf_counter() - t:.0f} s)", flush=True)
        cache = args.root / f"cache{size}"
        shutil.rmtree(cache, ignore_errors=True)
        runs = args.root / f"runs{size}"
        shutil.rmtree(runs, ignore_errors=True)
        cold = train(folder, cache, runs / "cold", args.steps, args.workers)
        warm = train(folder, cache, runs / "warm", args.steps, args.workers)
        rates = loaders(folder, cache, args.workers, args.batches)
        rows.append((f"{size:,}", cold, warm, rates))
        print(f"  done: {size:,}", flush=True)
    print_table("images", "plain PIL", rows)


if __name__ == "__main__":
    main()
