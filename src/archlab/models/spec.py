"""What a model needs to know about its input, independent of where the data came from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageSpec:
    """Images of shape (C, H, W)."""

    channels: int
    height: int
    width: int


@dataclass(frozen=True)
class SequenceSpec:
    """Numeric series of shape (T, F)."""

    length: int
    features: int


@dataclass(frozen=True)
class TextSpec:
    """Token ids of shape (T,), right-padded with `pad_id`."""

    vocab_size: int
    length: int
    pad_id: int = 0


InputSpec = ImageSpec | SequenceSpec | TextSpec
