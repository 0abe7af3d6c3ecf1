"""Batches sliced from in-memory tensors: no per-sample Python work, no collate.

The training loader can be resumed mid-epoch: epoch e's order is a pure function of (seed, e),
and the loader is Lightning-`_Stateful` (`state_dict` / `load_state_dict`), recording how many
batches of which epoch it has served. Lightning stores that state in every checkpoint
(`FitLoop.on_save_checkpoint`) and hands it back before a mid-epoch restart, but replays
nothing itself: skipping the batches already trained on is the loader's job.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sized
from itertools import islice
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.callbacks import Callback

# No public twin: eval examples split over processes without padding (tests/test_private_apis.py)
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    SequentialSampler,
)

# 2**64 / golden ratio: spreads epochs far apart in seed space, so that (seed, epoch + 1) does
# not replay (seed + 1, epoch) as `seed + epoch` would.
_EPOCH_STRIDE = 0x9E3779B97F4A7C15


class TensorBatches(Dataset):
    """Tensors indexed together; `__getitems__` returns a whole batch with one slice each.

    A DataLoader over it keeps its usual sampler, so Lightning can still swap in a
    sequential sampler (overfit_batches) or a distributed one.
    """

    def __init__(self, *tensors: torch.Tensor) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices)
        return tuple(t[index] for t in self.tensors)


class _Skips:
    """A sampler that can start its next pass `skip` positions in, so a resumed loader need
    not read and transform the batches it would drop."""

    skip = 0

    def _from_skip(self, order: list[int]) -> Iterator[int]:
        skip, self.skip = self.skip, 0
        return iter(order[skip:])


class EpochShuffle(_Skips, RandomSampler):
    """A random order per epoch that depends on (seed, epoch) only, never on global RNG state.

    Lightning calls `set_epoch` before every epoch (as for a DistributedSampler), so a resumed
    run draws the same orders as an uninterrupted one. A `RandomSampler`, so Lightning knows
    it shuffles: `overfit_batches` replaces it with a sequential sampler, DDP with a
    `DistributedSampler` (itself a function of Lightning's global seed and the epoch).
    """

    def __init__(self, data_source: Sized, seed: int) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return self._from_skip(_epoch_order(len(self.data_source), self.seed, self.epoch))


def _epoch_order(size: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed((seed + epoch * _EPOCH_STRIDE) % 2**64)
    return torch.randperm(size, generator=generator).tolist()


class DistributedEpochShuffle(_Skips, DistributedSampler):
    """`EpochShuffle`'s order dealt round-robin to the processes of a DDP run.

    Rank r takes positions r, r + W, r + 2W ... of the single-process order, so with a
    per-process batch of B / W the W batches of step k together hold exactly the single-process
    batch k of size B: the same experiment at the same global batch sees the same examples at
    every step on 1 or W processes. As `DistributedSampler` (which Lightning leaves in place),
    the order's tail is padded with its head so that every rank gets as many samples.
    """

    def __init__(self, dataset: Sized, seed: int, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)

    def __iter__(self) -> Iterator[int]:
        order = _epoch_order(len(self.dataset), self.seed, self.epoch)
        order += order[: self.total_size - len(order)]
        return self._from_skip(order[self.rank : self.total_size : self.num_replicas])


def _process_group() -> tuple[int, int] | None:
    """(world size, rank) inside a multi-process run, else None."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_world_size(), dist.get_rank()
    return None


class _SequentialEpochs(_Skips, SequentialSampler):
    """A sequential sampler that knows the epoch, so a resumed loader can tell the epoch it
    was checkpointed in from the next one."""

    epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return self._from_skip(list(range(len(self.data_source))))


class ResumableLoader(DataLoader):
    """A DataLoader that continues an interrupted epoch after `load_state_dict`.

    The epoch comes from the sampler's `epoch` (set by Lightning through `set_epoch`), so the
    saved position is applied only when that same epoch is resumed: a checkpoint taken on an
    epoch's last batch resumes with the next epoch, whole. archlab's samplers start the pass
    after the skipped batches (nothing is read for them); with another sampler they are
    fetched and dropped. `__init__` takes DataLoader's arguments, so Lightning can
    re-instantiate it with another sampler.
    """

    def __init__(self, dataset: Dataset, **kwargs: Any) -> None:
        if type(kwargs.get("sampler")) is SequentialSampler:  # Lightning's, for overfit_batches
            kwargs["sampler"] = _SequentialEpochs(dataset)
        super().__init__(dataset, **kwargs)
        self._epoch: int | None = None  # epoch of the latest pass
        self._served = 0  # batches that pass has yielded
        self._resume: tuple[int | None, int] | None = None

    def state_dict(self) -> dict[str, int | None]:
        return {"epoch": self._epoch, "batches": self._served}

    def load_state_dict(self, state: dict[str, int | None]) -> None:
        self._resume = (state["epoch"], int(state["batches"]))

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        # A generator, so this runs at the first `next`: after Lightning's `set_epoch` and
        # after `RestoreLoaderPosition`, even when Lightning called `iter()` earlier.
        epoch = getattr(self.sampler, "epoch", None)
        resume, self._resume = self._resume, None
        skip = resume[1] if resume is not None and resume[0] == epoch else 0
        skips_in_sampler = isinstance(self.sampler, _Skips) and self.batch_size is not None
        if skips_in_sampler:
            self.sampler.skip = skip * self.batch_size  # read when the pass starts, below
        batches = super().__iter__()
        if not skips_in_sampler:
            deque(islice(batches, skip), maxlen=0)
        self._epoch, self._served = epoch, skip
        for batch in batches:
            self._served += 1
            yield batch


class RestoreLoaderPosition(Callback):
    """Hands a resumed fit's saved loader positions to the train loaders (Lightning #20550).

    Lightning loads them in `FitLoop.setup_data`, but a `configure_optimizers` that reads
    `trainer.estimated_stepping_batches` (as archlab's does, for the LR schedule) builds the
    train loader before the checkpoint's loop state is restored, and the later `setup_data`
    returns early: the positions would be dropped and the epoch replayed from its start.
    Our loaders read their position at the first batch, so loading it here is still in time.
    A no-op when Lightning has loaded them itself or the fit is not restarting mid-epoch.
    """

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.fit_loop._load_combined_loader_states()


def _as_is(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return batch


def tensor_loader(
    tensors: tuple[torch.Tensor, ...],
    batch_size: int,
    shuffle: bool,
    drop_last: bool = False,
    *,
    seed: int | None = None,
) -> DataLoader:
    """A DataLoader whose batches are sliced from `tensors` in one step (see `batch_loader`)."""
    return batch_loader(TensorBatches(*tensors), batch_size, shuffle, drop_last, seed=seed)


def batch_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    drop_last: bool = False,
    *,
    seed: int | None = None,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader over a dataset that serves whole batches (`__getitems__`), no collate.

    `shuffle=True` (training) gives a `ResumableLoader` whose epoch orders follow from `seed`
    (default: `torch.initial_seed()`, i.e. the seed given to `seed_everything`). Every loader
    gets its own generator: a DataLoader without one draws its workers' base seed from the
    global RNG on each `iter()`, which would shift the dropout masks of a resumed run.

    In a multi-process run the samplers are distributed ones that Lightning keeps: training
    deals the single-process order to the ranks (`DistributedEpochShuffle`); evaluation
    splits the examples without padding, so val/test metrics (summed across processes by
    torchmetrics) count every example exactly once. Batches are pinned once CUDA is in use,
    so Lightning's non-blocking copies to the GPU overlap with compute.

    With `num_workers` > 0 (streamed data) batches are read in persistent worker processes;
    the batch order is still drawn in the main process, so it does not depend on them.
    """
    common = {
        "batch_size": batch_size,
        "drop_last": drop_last,
        "collate_fn": _as_is,
        "generator": torch.Generator(),
        "pin_memory": torch.cuda.is_available() and torch.cuda.is_initialized(),
        "num_workers": num_workers,
        "persistent_workers": num_workers > 0,
    }
    group = _process_group()
    if not shuffle:
        if group:
            world, rank = group
            sampler = UnrepeatedDistributedSampler(
                dataset, num_replicas=world, rank=rank, shuffle=False
            )
            return DataLoader(dataset, sampler=sampler, **common)
        return DataLoader(dataset, **common)
    seed = torch.initial_seed() if seed is None else seed
    sampler = DistributedEpochShuffle(dataset, seed, *group) if group else None
    return ResumableLoader(dataset, sampler=sampler or EpochShuffle(dataset, seed), **common)
