"""Numeric series: the digits read pixel by pixel by default; CSV and UCR-archive files;
unlabelled series (a CSV of values only, generated glyphs) for pretraining."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from archlab.data.augment import augment_series
from archlab.data.base import ArrayDataModule, RawSplit, standardize_stats, unlabelled
from archlab.data.image import GLYPHS, load_digits_images
from archlab.data.sources import series
from archlab.data.transforms import series_tensor
from archlab.models.spec import SequenceSpec


class StandardizeSeries:
    """The fitted series transform (`transforms.series_tensor`) as a picklable callable: it
    runs in the loader's worker processes."""

    def __init__(self, fitted: dict[str, Any]) -> None:
        self.fitted = {k: v for k, v in fitted.items() if k in ("mean", "std")}

    def __call__(self, inputs: np.ndarray) -> torch.Tensor:
        return series_tensor(inputs, self.fitted)


class SequenceDataModule(ArrayDataModule):
    """(N, T, F) float tensors, standardised per feature with train-split statistics.

    The built-in `digits` task is the small cousin of row-by-row and pixel-by-pixel MNIST:
    each 8x8 digit becomes a series of 8 rows of 8 pixels (`layout=rows`) or of 64 single
    pixels (`layout=pixels`, which asks a model to remember over many more steps).
    """

    def read(self) -> dict[str, RawSplit]:
        source = self.cfg["source"]
        steps = 8 if self.cfg["layout"] == "rows" else 64
        if source == "digits":
            pixels, labels = load_digits_images()
            return {"train": RawSplit(pixels.reshape(len(pixels), steps, -1), labels)}
        if source == "glyphs":  # the image corpus, read like the digits
            from archlab.data.sources.glyphs import generate_glyphs

            pixels = generate_glyphs(self.cfg["max_examples"] or GLYPHS)
            return {"train": RawSplit(*unlabelled(pixels.reshape(len(pixels), steps, -1)))}
        if source == "corpus":
            return self.read_user_files(
                lambda path: unlabelled(
                    series.load_series_csv(
                        path, None, self.cfg["num_features"], self.cfg["max_examples"]
                    )[0]
                )
            )
        if source == "csv":
            return self.read_user_files(
                lambda path: series.load_series_csv(
                    path, self.cfg["label_column"], self.cfg["num_features"]
                )
            )
        return {
            split: RawSplit(*arrays) for split, arrays in series.load_ucr(self.user_path()).items()
        }

    def fit(self, train_inputs: np.ndarray) -> dict[str, Any]:
        if not self.cfg["normalize"]:
            return {}
        return standardize_stats(train_inputs, axes=(0, 1))

    def batch_transform(self) -> StandardizeSeries:
        return StandardizeSeries(self.fitted)

    def augment_batch(self, inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return augment_series(inputs, self.cfg["augment"], generator)

    @property
    def spec(self) -> SequenceSpec:
        return SequenceSpec(*self.input_shape)
