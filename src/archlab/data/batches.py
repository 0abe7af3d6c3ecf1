"""Batches sliced from in-memory tensors: no per-sample Python work, no collate."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset


class TensorBatches(Dataset):
    """Tensors indexed together; `__getitems__` returns a whole batch with one slice each.

    A plain DataLoader over it keeps its usual sampler, so Lightning can still swap in a
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


def _as_is(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return batch


def tensor_loader(
    tensors: tuple[torch.Tensor, ...], batch_size: int, shuffle: bool, drop_last: bool = False
) -> DataLoader:
    """A DataLoader whose batches are sliced from `tensors` in one step."""
    return DataLoader(
        TensorBatches(*tensors),
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        collate_fn=_as_is,
    )
