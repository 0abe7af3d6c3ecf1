"""Batches sliced from in-memory tensors: no per-sample Python work, no collate."""

from __future__ import annotations

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler


class TensorBatches(Dataset):
    """Indexed by a list of sample indices, returns the whole batch at once."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices)
        return tuple(t[index] for t in self.tensors)


def _as_is(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return batch


def tensor_loader(
    tensors: tuple[torch.Tensor, ...], batch_size: int, shuffle: bool, drop_last: bool = False
) -> DataLoader:
    """A DataLoader (so Lightning treats it as usual) whose sampler yields whole batches."""
    data = TensorBatches(*tensors)
    order = RandomSampler(data) if shuffle else SequentialSampler(data)
    return DataLoader(
        data,
        sampler=BatchSampler(order, batch_size, drop_last),
        batch_size=None,
        collate_fn=_as_is,
    )
