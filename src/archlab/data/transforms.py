"""Input transforms fitted on the train split, applied alike by the data modules (training,
evaluation) and by `archlab.inference` (new inputs): one code path, so a model never sees
inputs prepared another way than those it was trained on. No Lightning here, so inference
can use it without loading the training stack."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from archlab.data.tokenizers import Tokenizer, tokenizer_from_json

# The key Lightning saves each data module's `state_dict()` under: its class name.
STATE_KEYS = {
    "image": "ImageDataModule",
    "sequence": "SequenceDataModule",
    "text": "TextDataModule",
    "pairs": "PairsDataModule",
}


def image_tensor(images: np.ndarray, fitted: Mapping[str, Any]) -> torch.Tensor:
    """(N, C, H, W) raw pixels -> float tensor, standardised per channel if the run did."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    if "mean" in fitted:
        x = (x - fitted["mean"][:, None, None]) / fitted["std"][:, None, None]
    return x


def series_tensor(series: np.ndarray, fitted: Mapping[str, Any]) -> torch.Tensor:
    """(N, T, F) raw values -> float tensor, standardised per feature if the run did."""
    x = torch.from_numpy(np.ascontiguousarray(series)).float()
    if "mean" in fitted:
        x = (x - fitted["mean"]) / fitted["std"]
    return x


def restore_tokenizer(fitted: Mapping[str, Any], kind: str) -> Tokenizer:
    """The tokenizer fitted on the run's train split, as saved in its checkpoints."""
    return tokenizer_from_json(
        fitted["tokenizer"], source="the tokenizer saved with this run", expect_kind=kind
    )


def text_tensor(
    tokenizer: Tokenizer, texts: Sequence[str], fitted: Mapping[str, Any]
) -> torch.Tensor:
    """(N, length) token ids, truncated and right-padded to the run's fitted length; with the
    end-of-text id after each whole text if the tokenizer has one (a language model's)."""
    return tokenizer.encode_documents(texts, fitted["length"])
