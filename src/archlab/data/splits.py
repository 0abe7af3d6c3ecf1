"""Seeded train/val/test splits and the mapping of raw labels to class indices."""

from __future__ import annotations

import math

import numpy as np

from archlab.errors import DataError


def _approximate_mode(counts: np.ndarray, draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Per-class draws proportional to `counts`, the remainders rounded up largest first
    (ties broken at random)."""
    continuous = counts / counts.sum() * draws
    floored = np.floor(continuous)
    need = int(draws - floored.sum())
    remainder = continuous - floored
    for value in np.sort(np.unique(remainder))[::-1]:
        if need <= 0:
            break
        (tied,) = np.where(remainder == value)
        add = min(len(tied), need)
        floored[rng.choice(tied, size=add, replace=False)] += 1
        need -= add
    return floored.astype(int)


def split_off(
    n: int, fraction: float, labels: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, split_off) with `fraction` of `n` (rounded up) split off, stratified by
    `labels` when every class has two examples and both parts can hold every class, otherwise
    a plain seeded split.

    The draws are those of scikit-learn's `train_test_split(..., random_state=seed,
    stratify=labels)` (its StratifiedShuffleSplit, or ShuffleSplit as the fallback), written in
    numpy so that start-up imports no scikit-learn and every split stays the one archlab's
    results were measured on.
    """
    index = np.arange(n)
    if fraction <= 0:
        return index, index[:0]
    held = min(math.ceil(fraction * n), n)
    rng = np.random.RandomState(seed)
    _, inverse, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    classes = len(counts)
    if counts.min() < 2 or held < classes or n - held < classes:
        order = rng.permutation(n)
        return order[held:], order[:held]
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    kept = _approximate_mode(counts, n - held, rng)
    out = _approximate_mode(counts - kept, held, rng)
    keep: list[int] = []
    split: list[int] = []
    for c in range(classes):
        shuffled = members[c].take(rng.permutation(counts[c]), mode="clip")
        keep.extend(shuffled[: kept[c]])
        split.extend(shuffled[kept[c] : kept[c] + out[c]])
    return rng.permutation(keep), rng.permutation(split)


def encode_labels(
    splits: dict[str, np.ndarray], classes: list[str] | None = None
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Class names (from the train split unless given) and int64 labels per split."""
    if classes is None:
        values = np.unique(splits["train"].astype(str))
        try:  # numeric labels sort numerically: "2" before "10"
            values = sorted(values, key=float)
        except ValueError:
            values = sorted(values)
        classes = [str(v) for v in values]
    lookup = {c: i for i, c in enumerate(classes)}
    encoded = {}
    for name, raw in splits.items():
        raw = raw.astype(str)
        unknown = sorted(set(np.unique(raw)) - lookup.keys())
        if unknown:
            raise DataError(
                f"The {name} split has label(s) {unknown[:5]} that the training split does not "
                f"have (known: {classes[:20]}); make every class appear in the training data."
            )
        encoded[name] = np.array([lookup[v] for v in raw], dtype=np.int64)
    return classes, encoded
