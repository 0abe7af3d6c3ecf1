"""Splits that stay on disk: views of a record cache, and the dataset loader workers read from.

`RecordView` stands where an in-memory split holds an array: splitting and label subsetting
only pick indices, so streamed and in-memory splits are the same examples for the same seeds.
`RecordDataset` reads a whole batch per call (`__getitems__`) and applies the split's
transform there, so decoding already happened (the cache) and standardising happens in the
DataLoader's worker processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from archlab.data.cache import RecordCache

# A source whose inputs would take more than this as float32 tensors is streamed by default.
IN_MEMORY_LIMIT = 1 << 30


@dataclass(frozen=True)
class RecordView:
    """Examples `index` of `cache`; indexing with an index array gives a sub-view."""

    cache: RecordCache
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: np.ndarray) -> RecordView:
        return RecordView(self.cache, self.index[index])

    def sample(self, limit: int, seed: int) -> RecordView:
        """At most `limit` examples, a seeded random subset when there are more."""
        if len(self.index) <= limit:
            return self
        pick = np.random.default_rng(seed).choice(len(self.index), limit, replace=False)
        return self[np.sort(pick)]

    def chunks(self, size: int = 1024):
        for start in range(0, len(self.index), size):
            yield self.cache.read(self.index[start : start + size])


def streamed_stats(view: RecordView, axes: Sequence[int]) -> dict[str, torch.Tensor]:
    """Mean and std over `axes` (0 = examples), read chunk by chunk in float64: each chunk's
    mean and squared deviations, merged (Chan et al.), so values far from zero keep their
    precision (E[x^2] - mean^2 would cancel) and the result matches numpy's on the whole."""
    axes = tuple(axes)
    mean = m2 = None
    count = 0
    for chunk in view.chunks():
        x = chunk.astype(np.float64)
        chunk_mean = x.mean(axis=axes, keepdims=True)
        chunk_m2 = ((x - chunk_mean) ** 2).sum(axis=axes, keepdims=True)
        n = x.size // chunk_mean.size  # values per statistic in this chunk
        if mean is None:
            mean, m2 = chunk_mean, chunk_m2
        else:
            delta, total = chunk_mean - mean, count + n
            mean = mean + delta * (n / total)
            m2 = m2 + chunk_m2 + delta * delta * (count * n / total)
        count += n
    std = np.sqrt(m2 / count).squeeze(axis=axes)
    return {
        "mean": torch.from_numpy(mean.squeeze(axis=axes)).float(),
        "std": torch.from_numpy(std).float().clamp(min=1e-6),
    }


class RecordDataset(Dataset):
    """(transformed inputs, labels) read from a record cache, a batch per `__getitems__`."""

    def __init__(
        self,
        view: RecordView,
        labels: np.ndarray,
        transform: Callable[[np.ndarray], torch.Tensor],
    ) -> None:
        self.view, self.labels, self.transform = view, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([index])
        return x[0], y[0]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = np.asarray(indices, dtype=np.int64)
        inputs = self.view.cache.read(self.view.index[index])
        return self.transform(inputs), torch.from_numpy(self.labels[index])


class StreamedInputs:
    """A streamed split's inputs where code expects the split's input tensor (dashboards,
    `archlab-explain`, parity checks): its length and shape, and an index or a slice of it,
    read and transformed from the cache on demand; nothing is held in memory."""

    def __init__(self, dataset: RecordDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.dataset), *self.dataset[0][0].shape))

    def __getitem__(self, key: int | slice) -> torch.Tensor:
        if isinstance(key, slice):
            return self.dataset.__getitems__(list(range(len(self.dataset))[key]))[0]
        return self.dataset[range(len(self.dataset))[key]][0]


def default_workers() -> int:
    """Loader worker processes when `data.num_workers` is null: the cores but one, at most 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, (cores or 1) - 1))
