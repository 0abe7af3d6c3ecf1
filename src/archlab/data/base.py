"""The data module every modality shares: read, split, fit transforms on train, serve tensors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from archlab.config.budget import auto_batch_size
from archlab.config.schema import BudgetConfig
from archlab.data.batches import tensor_loader
from archlab.data.splits import encode_labels, split_off
from archlab.errors import ConfigError, DataError
from archlab.models.spec import InputSpec

SPLITS = ("train", "val", "test")
BUDGET = vars(BudgetConfig())
_SPLIT_ALIASES = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


@dataclass
class RawSplit:
    """Examples as read from disk, before transforms: arrays or texts, and raw labels."""

    inputs: np.ndarray | list[str]
    labels: np.ndarray

    def take(self, index: np.ndarray) -> RawSplit:
        if isinstance(self.inputs, list):
            return RawSplit([self.inputs[i] for i in index], self.labels[index])
        return RawSplit(self.inputs[index], self.labels[index])


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


class ArrayDataModule(pl.LightningDataModule):
    """Holds each split as tensors in memory; subclasses say how to read and transform.

    Transforms (normalisation statistics, tokenizer) are fitted on the train split only and
    kept in `state_dict()`, so they travel inside checkpoints and evaluation reuses them.
    """

    def __init__(self, cfg: Mapping[str, Any], seed: int | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.seed = seed  # of the training batch order; None: torch's initial seed
        self.fitted: dict[str, Any] | None = None
        self.tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # -- what each modality provides
    def read(self) -> dict[str, RawSplit]:
        """Raw examples per split; at least `train`. Missing splits are carved from train."""
        raise NotImplementedError

    def fit(self, train_inputs: Any) -> dict[str, Any]:
        """Transform state learnt from the training inputs only."""
        raise NotImplementedError

    def transform(self, inputs: Any) -> torch.Tensor:
        raise NotImplementedError

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
        if self.tensors:
            return
        raw = self._complete(self.read())
        known = self.fitted or {}  # from a checkpoint: all of it, or a pretrained run's transforms
        classes, labels = encode_labels({s: raw[s].labels for s in SPLITS}, known.get("classes"))
        if "classes" not in known:
            self.fitted = {"classes": classes, **(known or self.fit(raw["train"].inputs))}
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
            x = self.transform(raw[split].inputs)
            self.tensors[split] = (x, torch.from_numpy(labels[split]))

    @property
    def classes(self) -> list[str]:
        return list(self.fitted["classes"])

    @property
    def num_classes(self) -> int:
        return len(self.fitted["classes"])

    def state_dict(self) -> dict[str, Any]:
        return dict(self.fitted or {})

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fitted = dict(state)

    def train_dataloader(self) -> DataLoader:
        # batch_size null: archlab-train resolves it (config.budget); elsewhere, the same rule.
        batch = self.cfg["batch_size"] or auto_batch_size(len(self.tensors["train"][1]), BUDGET)
        return tensor_loader(self.tensors["train"], batch, shuffle=True, seed=self.seed)

    def val_dataloader(self) -> DataLoader:
        return tensor_loader(self.tensors["val"], self.cfg["eval_batch_size"], shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return tensor_loader(self.tensors["test"], self.cfg["eval_batch_size"], shuffle=False)


def standardize_stats(x: np.ndarray, axes: Sequence[int]) -> dict[str, torch.Tensor]:
    """Mean and std over `axes` (std floored so constant channels do not blow up)."""
    x = x.astype(np.float64)
    mean = torch.from_numpy(x.mean(axis=tuple(axes))).float()
    std = torch.from_numpy(x.std(axis=tuple(axes))).float().clamp(min=1e-6)
    return {"mean": mean, "std": std}
