"""Seeded train/val/test splits and the mapping of raw labels to class indices."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from archlab.errors import DataError


def split_off(
    n: int, fraction: float, labels: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, split_off) with `fraction` of `n` split off, stratified when possible."""
    index = np.arange(n)
    if fraction <= 0:
        return index, index[:0]
    try:
        return tuple(
            train_test_split(index, test_size=fraction, random_state=seed, stratify=labels)
        )
    except ValueError:  # a class too small to stratify: fall back to a plain seeded split
        return tuple(train_test_split(index, test_size=fraction, random_state=seed))


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
