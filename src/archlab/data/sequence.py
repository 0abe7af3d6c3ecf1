"""Numeric series: the digits read pixel by pixel by default; CSV and UCR-archive files (held
in memory, or streamed from an on-disk cache when large); unlabelled series (a CSV of values
only, generated glyphs) for pretraining."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archlab.data.augment import augment_series
from archlab.data.base import (
    NO_LABEL,
    ArrayDataModule,
    RawSplit,
    predefined_splits,
    say,
    standardize_stats,
    unlabelled,
)
from archlab.data.image import GLYPHS, load_digits_images
from archlab.data.series_cache import SeriesSource, build_series
from archlab.data.sources import series
from archlab.data.streaming import RecordView, streamed_stats
from archlab.data.transforms import series_tensor
from archlab.models.spec import SequenceSpec

# Series files larger than this on disk are streamed by default. In memory, each value (at
# least 2 characters with its separator) becomes 4 bytes, held twice while the rows are
# stacked: even the densest 256 MiB of CSV peaks at about 1 GiB (data.in_memory decides too).
SERIES_IN_MEMORY_LIMIT = 256 << 20
_STREAMABLE = ("csv", "corpus", "ucr")


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

    def _series_source(self) -> SeriesSource:
        """The user's series CSV (per split) or UCR dataset as files and a reader of each."""
        cfg, path = self.cfg, self.user_path()
        if cfg["source"] == "ucr":
            train, test = series.ucr_files(path)
            files = {"train": str(train), "test": str(test)}
            return SeriesSource("series-ucr", files, series.iter_ucr_file, {})
        entries = predefined_splits(path) or {"train": path}
        label = cfg["label_column"] if cfg["source"] == "csv" else None
        limit = cfg["max_examples"] if cfg["source"] == "corpus" else None
        features = cfg["num_features"]

        def read(file: Path) -> Iterator[tuple[np.ndarray, str]]:
            for values, name in series.iter_series_csv(file, label, features, limit):
                yield values, NO_LABEL if name is None else name

        settings = {"label_column": label, "num_features": features, "max_examples": limit}
        files = {split: str(p) for split, p in entries.items()}
        return SeriesSource(f"series-{cfg['source']}", files, read, settings)

    def stream(self) -> dict[str, RawSplit] | None:
        """A series CSV or UCR dataset too large for memory (or data.in_memory=false): read
        once, as it streams by, into the on-disk cache of float32 records, then read there."""
        if self.cfg["source"] not in _STREAMABLE:
            return super().stream()
        source = self._series_source()
        nbytes = sum(os.path.getsize(f) for f in source.splits.values())
        what = f"{len(source.splits)} series file(s)"
        if not self.choose_streaming(0, nbytes, what, SERIES_IN_MEMORY_LIMIT, "on disk"):
            return None
        start = time.perf_counter()
        cache, reused = build_series(source, self.cache_dir)
        took = time.perf_counter() - start
        say(f"data: cache {cache.path} ({'reused' if reused else 'built'} in {took:.1f} s).")
        return self.views(cache, cache.sizes, cache.labels())

    def fit(self, train_inputs: np.ndarray | RecordView) -> dict[str, Any]:
        if not self.cfg["normalize"]:
            return {}
        if isinstance(train_inputs, RecordView):
            sample = train_inputs.sample(self.cfg["fit_sample"], self.cfg["split_seed"])
            return streamed_stats(sample, axes=(0, 1))
        return standardize_stats(train_inputs, axes=(0, 1))

    def batch_transform(self) -> StandardizeSeries:
        return StandardizeSeries(self.fitted)

    def augment_batch(self, inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return augment_series(inputs, self.cfg["augment"], generator)

    @property
    def spec(self) -> SequenceSpec:
        return SequenceSpec(*self.input_shape)
