"""archlab against the fastest hand-written PyTorch loop, per architecture; and start-up time.

What is measured, and why
-------------------------
archlab trains through a real Lightning `Trainer`, built by `build_trainer` exactly as
`archlab-train` builds it: TensorBoard logger, checkpoints, LR monitor and progress bar on.
The question is what that machinery costs over the least a training loop must do. For each
architecture on its native modality (CNN on images, RNN on sequences, Transformer on text;
default configs otherwise) the bench runs, in one process and alternating which side goes
first, an archlab fit and a plain loop: batches sliced from the in-memory tensors through a
randperm, `model.train()`, `zero_grad(set_to_none=True)`, forward, cross-entropy, backward,
optimizer step, scheduler step, nothing else. Both sides get the same validated config, the
same data tensors (`dm.tensors["train"]` after `setup()`), the same initial weights (seeded),
batch size, number of optimizer steps, optimizer and LR schedule, and the same torch threads.

Two comparisons per architecture, each the median over 5 runs of each side (20 epochs each,
the default; 2 for the Transformer), after one short warm-up run of each side:

* train/epoch: the training part of an epoch. On the archlab side it is the span between the
  `on_train_epoch_start` and `on_train_epoch_end` hooks minus the validation run inside it
  (Lightning 2 validates before `on_train_epoch_end`): what the framework adds per step.
  This is the number held to the target, archlab/plain <= 1.10; it is also shown as the
  overhead in milliseconds per optimizer step.
* fit/epoch: the wall time of the whole `trainer.fit` (sanity check, validation, checkpoints,
  logging, set-up and tear-down) divided by its epochs, against the plain loop plus one plain
  evaluation pass over the val split per epoch: what a user waits for.

The final val accuracy of both sides is printed as a check that both trained alike; it is
not identical, since Lightning's sampler draws the batch order from its own generator. The
range of archlab/plain over neighbouring pairs of runs and the load average show how noisy
the machine was; where other jobs share the cores, `OMP_NUM_THREADS=1 make bench` is steadier.
Lightning's console output (progress bar, model summary) is still produced but goes to
/dev/null while fitting, so that the tables stay readable.

Start-up is the wall time of `python -m archlab.train trainer.max_steps=1
trainer.limit_val_batches=0 test_after_fit=false` (launch to one training step, then exit),
beside that of `python -c "import pytorch_lightning"`, the floor any Lightning CLI pays.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from archlab.config.budget import apply_budget, resolve_budget
from archlab.config.job import JobContext
from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.data import build_datamodule
from archlab.data.base import ArrayDataModule
from archlab.models import build_classifier
from archlab.run.trainer import build_trainer
from archlab.tasks.classify import ClassificationTask
from archlab.tasks.optim import build_scheduler, make_optimizer, param_groups

REPO = Path(__file__).resolve().parents[1]
# (model, data, epochs per run, runs per side). 20 epochs is the default, so the whole-fit time
# is what `archlab-train` takes; 2 for the Transformer, whose epoch is 30x slower, so that the
# bench stays within ~5 minutes on 2 CPU cores.
CASES = (("cnn", "image", 20, 5), ("rnn", "sequence", 20, 5), ("transformer", "text", 2, 5))
# The warm-up run of each side trains this many batches.
WARM_UP_BATCHES = 2
STARTUP_REPEATS = 3
TARGET = 1.10
STARTUP_TARGET = 1.0  # seconds archlab may add to `import pytorch_lightning`
ONE_STEP_TRAIN = (
    sys.executable,
    "-m",
    "archlab.train",
    "trainer.max_steps=1",
    "trainer.limit_val_batches=0",
    "test_after_fit=false",
)
TRAIN_LABEL = "archlab-train, 1 step, no val/test"
IMPORT_LABEL = 'python -c "import pytorch_lightning"'


@dataclass
class Run:
    """One training run: seconds per training epoch, the whole run's seconds, optimizer steps
    and the final val accuracy."""

    train: list[float]
    total: float
    steps: int
    val_acc: float

    def train_per_epoch(self) -> float:
        return statistics.mean(self.train)

    def total_per_epoch(self) -> float:
        return self.total / len(self.train)


class EpochTimer(pl.Callback):
    """Training seconds per epoch: the train-epoch hooks' span less the validation inside it."""

    def __init__(self) -> None:
        self.epochs: list[float] = []
        self._epoch_start = 0.0
        self._val_start = 0.0
        self._val = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._val = 0.0
        self._epoch_start = time.perf_counter()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._val += time.perf_counter() - self._val_start

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epochs.append(time.perf_counter() - self._epoch_start - self._val)


@contextmanager
def silenced() -> Iterator[None]:
    """Point file descriptors 1 and 2 at /dev/null: output is still written, just not shown."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(null)


def load_config(model: str, data: str, *overrides: str) -> DictConfig:
    """The validated default config for `model` x `data`, with `overrides`."""
    return validate(compose_config("train", [f"model={model}", f"data={data}", *overrides]))


def load_data(cfg: DictConfig) -> ArrayDataModule:
    datamodule = build_datamodule(cfg.data)
    datamodule.setup("fit")
    return datamodule


def with_budget(cfg: DictConfig, dm: ArrayDataModule) -> DictConfig:
    """`cfg` with its auto budget knobs sized as `archlab-train` sizes them for `dm`."""
    sizes = {split: len(y) for split, (_, y) in dm.tensors.items()}
    return apply_budget(cfg, resolve_budget(cfg, sizes["train"], sizes["val"]))


def seeded_model(cfg: DictConfig, dm: ArrayDataModule) -> nn.Module:
    """The classifier with the initial weights (and RNG state) `archlab-train` starts from."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    return build_classifier(cfg.model, dm.spec, dm.num_classes)


def archlab_run(cfg: DictConfig, dm: ArrayDataModule) -> Run:
    """`trainer.fit` as `archlab.train.train` runs it, in a fresh run directory."""
    task = ClassificationTask(
        seeded_model(cfg, dm), dm.num_classes, cfg.task, OmegaConf.to_container(cfg)
    )
    timer = EpochTimer()
    with tempfile.TemporaryDirectory(prefix="archlab-bench-") as run_dir, silenced():
        trainer = build_trainer(cfg, Path(run_dir), JobContext(Path(run_dir)))
        trainer.callbacks.append(timer)
        start = time.perf_counter()
        trainer.fit(task, datamodule=dm, weights_only=True)
        total = time.perf_counter() - start
    acc = float(trainer.callback_metrics["val/acc"])
    return Run(timer.epochs, total, trainer.global_step, acc)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    data: tuple[torch.Tensor, torch.Tensor],
    batch_size: int,
    steps: int,
    label_smoothing: float,
) -> None:
    x, y = data
    model.train()
    order = torch.randperm(len(y))
    for step in range(steps):
        index = order[step * batch_size : (step + 1) * batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[index]), y[index], label_smoothing=label_smoothing)
        loss.backward()
        optimizer.step()
        scheduler.step()


@torch.inference_mode()
def evaluate(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], batch_size: int) -> float:
    """Accuracy over `data`, in batches of `batch_size`."""
    x, y = data
    model.eval()
    correct = 0
    for start in range(0, len(y), batch_size):
        logits = model(x[start : start + batch_size])
        correct += int((logits.argmax(1) == y[start : start + batch_size]).sum())
    return correct / len(y)


def steps_per_epoch(cfg: DictConfig, examples: int) -> int:
    """Batches per epoch, the last one partial, capped by an integer `limit_train_batches`."""
    steps = math.ceil(examples / cfg.data.batch_size)
    limit = cfg.trainer.limit_train_batches
    return steps if limit is None else min(steps, int(limit))


def plain_run(cfg: DictConfig, dm: ArrayDataModule) -> Run:
    """The same training in a hand-written loop, plus one evaluation pass over val per epoch."""
    model = seeded_model(cfg, dm)
    data = dm.tensors["train"]
    batch_size, epochs = cfg.data.batch_size, cfg.trainer.max_epochs
    steps = steps_per_epoch(cfg, len(data[1]))
    optimizer = make_optimizer(
        param_groups(model.named_parameters(), cfg.task.optimizer), cfg.task.optimizer
    )
    scheduler = build_scheduler(optimizer, cfg.task.scheduler, epochs * steps)
    label_smoothing = cfg.task.label_smoothing
    times, acc = [], 0.0
    start = time.perf_counter()
    for _ in range(epochs):
        epoch_start = time.perf_counter()
        train_epoch(model, optimizer, scheduler, data, batch_size, steps, label_smoothing)
        times.append(time.perf_counter() - epoch_start)
        acc = evaluate(model, dm.tensors["val"], cfg.data.eval_batch_size)
    return Run(times, time.perf_counter() - start, epochs * steps, acc)


@dataclass
class Comparison:
    """The runs of both sides for one architecture; `archlab[i]` ran right beside `plain[i]`."""

    name: str
    steps: int
    epochs: int
    archlab: list[Run]
    plain: list[Run]

    def medians(self, per_run: Callable[[Run], float]) -> tuple[float, float]:
        """Median of `per_run` over the plain runs and over the archlab runs."""
        return (
            statistics.median(map(per_run, self.plain)),
            statistics.median(map(per_run, self.archlab)),
        )

    def pair_ratios(self) -> list[float]:
        """archlab/plain training time of each pair of neighbouring runs: the noise."""
        pairs = zip(self.archlab, self.plain, strict=True)
        return [a.train_per_epoch() / p.train_per_epoch() for a, p in pairs]


def compare(model: str, data: str, epochs: int, repeats: int) -> Comparison:
    """Warm both sides up, then alternate archlab and plain runs, `repeats` of each."""
    print(f"{model} on {data}: {repeats} runs of {epochs} epoch(s) per side ...", flush=True)
    cfg = load_config(model, data, f"trainer.max_epochs={epochs}")
    warm = load_config(
        model, data, "trainer.max_epochs=1", f"trainer.limit_train_batches={WARM_UP_BATCHES}"
    )
    dm = load_data(cfg)
    cfg, warm = with_budget(cfg, dm), with_budget(warm, dm)
    dm.cfg = cfg.data
    archlab_run(warm, dm)
    plain_run(warm, dm)
    steps = steps_per_epoch(cfg, len(dm.tensors["train"][1]))
    result = Comparison(f"{model} on {data}", steps, epochs, archlab=[], plain=[])
    sides = [("archlab", archlab_run), ("plain", plain_run)]
    for repeat in range(repeats):
        for side, run in sides if repeat % 2 == 0 else sides[::-1]:
            outcome = run(cfg, dm)
            if outcome.steps != epochs * steps:
                raise RuntimeError(f"{side} made {outcome.steps} steps, not {epochs * steps}")
            getattr(result, side).append(outcome)
    return result


def wall_time(command: Sequence[str]) -> float:
    """Seconds `command` takes from launch to exit; its output is kept only to report failure."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return elapsed


def startup_times() -> dict[str, float]:
    """Median wall time of a one-step `archlab-train` and of importing Lightning, alternated."""
    lightning = [sys.executable, "-c", "import pytorch_lightning"]
    times: dict[str, list[float]] = {TRAIN_LABEL: [], IMPORT_LABEL: []}
    with tempfile.TemporaryDirectory(prefix="archlab-bench-") as tmp:
        for repeat in range(STARTUP_REPEATS):
            train = [*ONE_STEP_TRAIN, f"hydra.run.dir={tmp}/run{repeat}"]
            times[TRAIN_LABEL].append(wall_time(train))
            times[IMPORT_LABEL].append(wall_time(lightning))
    return {label: statistics.median(t) for label, t in times.items()}


def print_comparisons(results: list[Comparison]) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print("\nSeconds per epoch, median over the runs of each side, after a warm-up run of each.")
    print(f"torch threads: {torch.get_num_threads()}; load average now (1, 5, 15 min): {load}")

    print("\nTraining only (archlab: the train-epoch hooks' span less validation)")
    head = (
        f"{'case':<20}{'steps':>6}{'epochs':>7}{'runs':>5}{'plain':>9}{'archlab':>9}"
        f"{'ratio':>7}{'pair ratios':>13}{'+ms/step':>10}"
    )
    print(f"{head}\n{'-' * len(head)}")
    worst = 0.0
    for r in results:
        plain, archlab = r.medians(Run.train_per_epoch)
        pairs = r.pair_ratios()
        worst = max(worst, archlab / plain)
        print(
            f"{r.name:<20}{r.steps:>6}{r.epochs:>7}{len(r.plain):>5}{plain:>9.3f}{archlab:>9.3f}"
            f"{archlab / plain:>6.2f}x{min(pairs):>8.2f}-{max(pairs):.2f}"
            f"{(archlab - plain) / r.steps * 1000:>10.2f}"
        )

    print("\nWhole fit per epoch (archlab: the wall time of trainer.fit, with sanity check,")
    print("validation, checkpoints, set-up; plain: training plus an evaluation pass over val)")
    head = f"{'case':<20}{'plain+eval':>11}{'archlab fit':>12}{'ratio':>7}{'val acc':>20}"
    print(f"{head}\n{'-' * len(head)}")
    for r in results:
        plain, archlab = r.medians(Run.total_per_epoch)
        acc_plain, acc_archlab = r.medians(attrgetter("val_acc"))
        print(
            f"{r.name:<20}{plain:>11.3f}{archlab:>12.3f}{archlab / plain:>6.2f}x"
            f"{acc_plain:>10.3f} / {acc_archlab:.3f}"
        )
    print("(val acc: plain / archlab; close, not equal: the batch orders differ)")

    verdict = "meets" if worst <= TARGET else "misses"
    print(f"\nWorst training-only ratio {worst:.2f}x {verdict} the target <= {TARGET:.2f}x.")


def print_startup(times: dict[str, float]) -> None:
    print(f"\nStart-up wall time, median of {STARTUP_REPEATS}")
    for label, seconds in times.items():
        print(f"  {label:<40}{seconds:>7.2f} s")
    extra = times[TRAIN_LABEL] - times[IMPORT_LABEL]
    verdict = "meets" if extra <= STARTUP_TARGET else "misses"
    print(f"archlab adds {extra:.2f} s to the import: {verdict} the target <= {STARTUP_TARGET} s")


def main() -> None:
    """`python -m bench.speed --startup`: the start-up measurement alone."""
    if "--startup" not in sys.argv[1:]:
        print_comparisons([compare(*case) for case in CASES])
    print(f"\nstart-up: {STARTUP_REPEATS} launches of each command ...", flush=True)
    print_startup(startup_times())


if __name__ == "__main__":
    main()
