"""Seeded train/val/test splits and the mapping of raw labels to class indices."""

from __future__ import annotations

import math

import numpy as np

from archlab.errors import DataError


def _stratified_counts(counts: np.ndarray, held: int) -> np.ndarray:
    """How many of each class to hold out: proportional, largest remainders rounded up, and
    at least one example of every class left behind."""
    exact = counts * held / counts.sum()
    take = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - take), kind="stable")
    take[order[: held - int(take.sum())]] += 1
    return np.minimum(take, counts - 1)


def split_off(
    n: int, fraction: float, labels: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices (kept, split_off) with `fraction` of `n` (rounded up) split off,
    stratified by `labels` when every class has two examples and both parts can hold every
    class; otherwise a plain seeded split. numpy only, so start-up imports no scikit-learn."""
    index = np.arange(n)
    if fraction <= 0:
        return index, index[:0]
    held = min(math.ceil(fraction * n), n)
    rng = np.random.default_rng(seed)
    _, inverse, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    classes = len(counts)
    if counts.min() < 2 or held < classes or n - held < classes:
        chosen = rng.permutation(n)[:held]
    else:
        take = _stratified_counts(counts, held)
        chosen = np.concatenate(
            [rng.permutation(np.flatnonzero(inverse == c))[: take[c]] for c in range(classes)]
        )
    out = np.zeros(n, dtype=bool)
    out[chosen] = True
    return index[~out], index[out]


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
