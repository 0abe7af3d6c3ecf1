"""Lightning data modules per modality, and the readers of the formats users bring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the data modules import Lightning; inference imports archlab.data without it
    from archlab.data.base import ArrayDataModule


def build_datamodule(
    cfg: Mapping[str, Any], seed: int | None = None, *, end_of_text: bool = False
) -> ArrayDataModule:
    """The data module for a validated `data` config section; `seed` orders training batches;
    `end_of_text`: texts end with an end-of-text id (a language model's data; text only)."""
    # The data modules import Lightning: only when one is built (archlab-predict never does).
    from archlab.data.image import ImageDataModule
    from archlab.data.pairs import PairsDataModule
    from archlab.data.sequence import SequenceDataModule
    from archlab.data.text import TextDataModule

    if cfg["modality"] == "text":
        return TextDataModule(cfg, seed, end_of_text=end_of_text)
    modules = {"image": ImageDataModule, "sequence": SequenceDataModule, "pairs": PairsDataModule}
    return modules[cfg["modality"]](cfg, seed)
