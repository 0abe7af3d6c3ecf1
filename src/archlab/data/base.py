"""The data module every modality shares: read, split, fit transforms on train, serve batches.

Small data is held in memory as tensors and sliced in the main process. A source that can
stream (`stream()` returns views of an on-disk record cache) is streamed when its tensors
would not fit comfortably in memory (`IN_MEMORY_LIMIT`) or when `data.in_memory=false`: the
loaders then read and transform batches in `data.num_workers` worker processes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.rank_zero import rank_zero_only
from torch.utils.data import DataLoader, Dataset

from archlab.config.budget import auto_batch_size
from archlab.config.schema import BudgetConfig
from archlab.data.augment import augment_active, batch_generator
from archlab.data.batches import TensorBatches, batch_loader
from archlab.data.cache import RecordCache, default_cache_dir
from archlab.data.splits import encode_labels, split_off
from archlab.data.streaming import (
    IN_MEMORY_LIMIT,
    RecordDataset,
    RecordView,
    StreamedInputs,
    default_workers,
)
from archlab.errors import ConfigError, DataError
from archlab.models.spec import InputSpec

SPLITS = ("train", "val", "test")
BUDGET = vars(BudgetConfig())
_SPLIT_ALIASES = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


@dataclass
class RawSplit:
    """Examples as read from disk, before transforms: arrays or texts, and raw labels."""

    inputs: np.ndarray | list[str] | RecordView
    labels: np.ndarray

    def take(self, index: np.ndarray) -> RawSplit:
        if isinstance(self.inputs, list):
            return RawSplit([self.inputs[i] for i in index], self.labels[index])
        return RawSplit(self.inputs[index], self.labels[index])


NO_LABEL = "-"  # the one "class" of a source without labels: self-supervised tasks ignore it


def unlabelled(inputs: Any) -> tuple[Any, np.ndarray]:
    """(inputs, labels) of a source without labels: one placeholder class."""
    return inputs, np.full(len(inputs), NO_LABEL)


def predefined_splits(path: Path) -> dict[str, Path]:
    """`train`/`val`/`test` files or folders inside `path`, if the user laid the data out so."""
    if not path.is_dir():
        return {}
    found = {}
    for entry in sorted(path.iterdir()):
        for split, names in _SPLIT_ALIASES.items():
            if entry.name.split(".")[0].lower() in names:
                found.setdefault(split, entry)
    return found if "train" in found else {}


@rank_zero_only
def say(message: str) -> None:
    """A one-line note on stderr, from the first process only."""
    print(f"archlab: {message}", file=sys.stderr, flush=True)


class ArrayDataModule(pl.LightningDataModule):
    """Serves each split as in-memory tensors or streamed from a record cache; subclasses say
    how to read and transform.

    Transforms (normalisation statistics, tokenizer) are fitted on the train split only and
    kept in `state_dict()`, so they travel inside checkpoints and evaluation reuses them.
    A streamed train split larger than `data.fit_sample` is fitted on a seeded sample of it.
    Training batches are augmented (`data.augment`) after they reach the device.
    """

    def __init__(self, cfg: Mapping[str, Any], seed: int | None = None) -> None:
        super().__init__()
        self.use_config(cfg)
        self.seed = seed  # of the training batch order; None: torch's initial seed
        self.fitted: dict[str, Any] | None = None
        # Inputs and labels per split; a streamed split's inputs are read on demand.
        self.tensors: dict[str, tuple[torch.Tensor | StreamedInputs, torch.Tensor]] = {}
        self.datasets: dict[str, Dataset] = {}
        self.input_shape: tuple[int, ...] = ()  # of one example, after the transform
        self.streamed = False
        self.bad_inputs: list[dict[str, str]] = []  # skipped with data.on_bad=skip
        self._note = ""  # which path was chosen, said after set-up

    def use_config(self, cfg: Mapping[str, Any]) -> None:
        """Read from `cfg` from now on: the run's config once the budget resolved its nulls."""
        self.cfg = cfg
        self.augments = augment_active(cfg.get("augment"))  # once: a lookup per step costs

    # -- what each modality provides
    def read(self) -> dict[str, RawSplit]:
        """Raw examples per split; at least `train`. Missing splits are carved from train."""
        raise NotImplementedError

    def fit(self, train_inputs: Any) -> dict[str, Any]:
        """Transform state learnt from the training inputs only."""
        raise NotImplementedError

    def batch_transform(self) -> Callable[[np.ndarray], torch.Tensor]:
        """The fitted transform of a batch of raw inputs; picklable (it runs in workers)."""
        raise NotImplementedError

    def transform(self, inputs: Any) -> torch.Tensor:
        return self.batch_transform()(inputs)

    def stream(self) -> dict[str, RawSplit] | None:
        """Splits as views of an on-disk cache when this source is to be streamed, else None
        (then `read` loads it). Sources that cannot stream keep this default."""
        if self.cfg.get("in_memory") is False:
            raise ConfigError(
                f"data.in_memory=false: data.source={self.cfg['source']} is read into memory "
                "(streaming from disk is for image folders, text csv, jsonl and corpus sources "
                "and series csv, corpus and ucr sources); drop data.in_memory=false."
            )
        return None

    def after_fit(self, raw: dict[str, RawSplit]) -> dict[str, RawSplit]:
        """Streamed splits once the transforms are fitted: a source whose cache depends on
        them (token ids depend on the tokenizer) builds it here."""
        return raw

    def augment_batch(self, inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """`inputs` augmented as `data.augment` says (the modality's own ops)."""
        return inputs

    @property
    def spec(self) -> InputSpec:
        raise NotImplementedError

    # -- shared machinery
    def user_path(self) -> Path:
        """The user's `data.path`, which must exist."""
        if not self.cfg["path"]:
            raise ConfigError(
                f"data.source={self.cfg['source']} reads your files: "
                "set data.path=<file or folder>."
            )
        path = Path(self.cfg["path"]).expanduser()
        if not path.exists():
            raise DataError(f"data.path={self.cfg['path']} does not exist ({path.resolve()}).")
        return path

    @property
    def num_workers(self) -> int:
        workers = self.cfg.get("num_workers")
        return default_workers() if workers is None else int(workers)

    @property
    def cache_dir(self) -> Path:
        return (
            Path(self.cfg["cache_dir"]).expanduser()
            if self.cfg.get("cache_dir")
            else (default_cache_dir())
        )

    def choose_streaming(
        self, count: int, nbytes: int, what: str, limit: int = IN_MEMORY_LIMIT, size: str = ""
    ) -> bool:
        """Whether `count` examples taking `nbytes` (as tensors, or as `size` says) are
        streamed (over `limit`); says which."""
        forced = self.cfg.get("in_memory")
        stream = nbytes > limit if forced is None else not forced
        why = (
            "data.in_memory=" + str(forced).lower()
            if forced is not None
            else (f"{'over' if stream else 'within'} {_size(limit)}")
        )
        where = (
            f"streamed from an on-disk cache by {self.num_workers} loader worker(s)"
            if stream
            else "held in memory"
        )
        amount = f"{count:,} {what}, " if count else f"{what}, "
        size = size or "as tensors"
        note = f"data: {amount}{_amount(nbytes)} {size} ({why}): {where}."
        if stream:
            say(note)  # now: building the cache may take a while
        else:
            self._note = note  # once the data is read: an unreadable file is the only line
        return stream

    def views(
        self, cache: RecordCache, sizes: dict[str, int], labels: Sequence[str]
    ) -> dict[str, RawSplit]:
        """Per-split views of `cache`, whose items are the splits' in order, bad ones left out."""
        self.bad_inputs = [{"path": b.item, "reason": b.reason} for b in cache.bad]
        keep = np.ones(cache.count, dtype=bool)
        keep[[b.index for b in cache.bad]] = False
        labels = np.array(labels, dtype=str)
        splits, start = {}, 0
        for split, size in sizes.items():
            index = np.arange(start, start + size)
            index = index[keep[index]]
            splits[split] = RawSplit(RecordView(cache, index), labels[index])
            start += size
        if self.bad_inputs:
            say(f"data: skipped {len(self.bad_inputs)} unreadable input(s) (data.on_bad=skip).")
        return splits

    def read_user_files(self, reader: Any) -> dict[str, RawSplit]:
        """Reads `data.path` with `reader(path) -> (inputs, labels)`, per split if laid out so."""
        path = self.user_path()
        files = predefined_splits(path) or {"train": path}
        return {split: RawSplit(*reader(file)) for split, file in files.items()}

    def _complete(self, raw: dict[str, RawSplit]) -> dict[str, RawSplit]:
        seed = self.cfg["split_seed"]
        train = raw["train"]
        total = len(train.labels)
        if "test" not in raw:
            keep, held = split_off(total, self.cfg["test_fraction"], train.labels, seed)
            train, raw["test"] = train.take(keep), train.take(held)
        if "val" not in raw:
            fraction = self.cfg["val_fraction"] * total / max(len(train.labels), 1)
            keep, held = split_off(len(train.labels), min(fraction, 0.5), train.labels, seed)
            train, raw["val"] = train.take(keep), train.take(held)
        raw["train"] = train
        return raw

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        streamed = self.stream()
        self.streamed = streamed is not None
        raw = self._complete(streamed or self.read())
        known = self.fitted or {}  # from a checkpoint: all of it, or a pretrained run's transforms
        classes, labels = encode_labels({s: raw[s].labels for s in SPLITS}, known.get("classes"))
        if "classes" not in known:
            self.fitted = {"classes": classes, **(known or self.fit(raw["train"].inputs))}
        if self.streamed:
            raw = self.after_fit(raw)
        fraction = self.cfg.get("label_fraction", 1.0)
        if fraction < 1:  # after fitting: tokenizer and statistics see every training input
            train = labels["train"]
            keep, _ = split_off(len(train), 1 - fraction, train, self.cfg["split_seed"])
            keep = np.sort(keep)
            raw["train"], labels["train"] = raw["train"].take(keep), labels["train"][keep]
        for split in SPLITS:
            if len(labels[split]) == 0:
                raise DataError(
                    f"The {split} split is empty: add data or change data.val_fraction / "
                    f"data.test_fraction (now {self.cfg['val_fraction']} / "
                    f"{self.cfg['test_fraction']})."
                )
            if self.streamed:
                transform = self.batch_transform()
                data = RecordDataset(raw[split].inputs, labels[split], transform)
                self.datasets[split] = data
                self.tensors[split] = (StreamedInputs(data), torch.from_numpy(labels[split]))
                continue
            x = self.transform(raw[split].inputs)
            self.tensors[split] = (x, torch.from_numpy(labels[split]))
            self.datasets[split] = TensorBatches(*self.tensors[split])
        self.input_shape = tuple(self.datasets["train"][0][0].shape)
        if self._note:
            say(self._note)

    def sample_inputs(self, count: int) -> torch.Tensor:
        """The first `count` training inputs, transformed (for shape and memory probes)."""
        return self.datasets["train"].__getitems__(list(range(count)))[0]

    @property
    def classes(self) -> list[str]:
        return list(self.fitted["classes"])

    @property
    def num_classes(self) -> int:
        return len(self.fitted["classes"])

    def state_dict(self) -> dict[str, Any]:
        """The fitted transforms, and the shape of one input: what inference needs."""
        state = dict(self.fitted or {})
        if "train" in self.tensors:
            state["input_shape"] = list(self.tensors["train"][0].shape[1:])
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fitted = dict(state)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        workers = self.num_workers if self.streamed else 0  # slicing tensors needs no workers
        return batch_loader(
            self.datasets[split], batch_size, shuffle, seed=self.seed, num_workers=workers
        )

    def train_dataloader(self) -> DataLoader:
        # batch_size null: archlab-train resolves it (config.budget); elsewhere, the same rule.
        batch = self.cfg["batch_size"] or auto_batch_size(len(self.datasets["train"]), BUDGET)
        return self._loader("train", batch, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.cfg["eval_batch_size"], shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.cfg["eval_batch_size"], shuffle=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augments training batches on their device, seeded by (seed, epoch, batch, rank)."""
        trainer = self.trainer
        if trainer is None or not trainer.training or not self.augments:
            return batch
        inputs, labels = batch
        seed = torch.initial_seed() if self.seed is None else self.seed
        step = trainer.fit_loop.epoch_loop.batch_progress.current.ready  # this batch's index
        g = batch_generator(inputs.device, seed, trainer.current_epoch, step, trainer.global_rank)
        return self.augment_batch(inputs, g), labels


def _amount(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.0f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.0f} MiB"


def standardize_stats(x: np.ndarray, axes: Sequence[int]) -> dict[str, torch.Tensor]:
    """Mean and std over `axes` (std floored so constant channels do not blow up)."""
    x = x.astype(np.float64)
    mean = torch.from_numpy(x.mean(axis=tuple(axes))).float()
    std = torch.from_numpy(x.std(axis=tuple(axes))).float().clamp(min=1e-6)
    return {"mean": mean, "std": std}
