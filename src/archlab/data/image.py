"""Images: the bundled 8x8 digits by default; class folders, MNIST and CIFAR-10 from disk;
unlabelled images (any folder, generated glyphs) for pretraining."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archlab.data.augment import augment_images
from archlab.data.base import (
    ArrayDataModule,
    RawSplit,
    predefined_splits,
    say,
    standardize_stats,
    unlabelled,
)
from archlab.data.cache import build_cache
from archlab.data.sources import images
from archlab.data.streaming import RecordView, streamed_stats
from archlab.data.transforms import image_tensor
from archlab.models.spec import ImageSpec

GLYPHS = 200_000  # images the `glyphs` corpus generates unless data.max_examples says otherwise
DIGITS_FILE = Path(__file__).with_name("digits.npz")


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8x8 handwritten digits (UCI "Optical Recognition of Handwritten Digits", as
    scikit-learn ships them), bundled as digits.npz so that start-up does not import
    scikit-learn: (N, 1, 8, 8) float32 values 0-16, and int64 labels."""
    with np.load(DIGITS_FILE) as bundled:
        return bundled["images"][:, None].astype(np.float32), bundled["labels"].astype(np.int64)


class Standardize:
    """The fitted image transform (`transforms.image_tensor`) as a picklable callable: it runs
    in the loader's worker processes."""

    def __init__(self, fitted: dict[str, Any]) -> None:
        self.fitted = {k: v for k, v in fitted.items() if k in ("mean", "std")}

    def __call__(self, inputs: np.ndarray) -> torch.Tensor:
        return image_tensor(inputs, self.fitted)


class ImageDataModule(ArrayDataModule):
    """(N, C, H, W) float tensors, standardised per channel with train-split statistics."""

    def read(self) -> dict[str, RawSplit]:
        source = self.cfg["source"]
        if source == "digits":
            return {"train": RawSplit(*load_digits_images())}
        if source == "glyphs":
            from archlab.data.sources.glyphs import generate_glyphs

            count = self.cfg["max_examples"] or GLYPHS
            return {"train": RawSplit(*unlabelled(generate_glyphs(count)))}
        if source == "corpus":
            size = tuple(self.cfg["image_size"]) if self.cfg["image_size"] else None
            return self.read_user_files(
                lambda path: unlabelled(
                    images.load_image_corpus(
                        path, self.cfg["channels"], size, self.cfg["max_examples"]
                    )
                )
            )
        if source == "folder":
            size = self.cfg["image_size"]
            size = tuple(size) if size else None
            skipped: list[tuple[str, str]] | None = [] if self.cfg["on_bad"] == "skip" else None
            splits = self.read_user_files(
                lambda path: images.load_image_folder(path, self.cfg["channels"], size, skipped)
            )
            self.bad_inputs = [{"path": p, "reason": r} for p, r in skipped or []]
            if self.bad_inputs:
                say(f"data: skipped {len(self.bad_inputs)} unreadable image(s) (data.on_bad=skip).")
            return splits
        loader = images.load_mnist if source == "mnist" else images.load_cifar10
        return {split: RawSplit(*arrays) for split, arrays in loader(self.user_path()).items()}

    def stream(self) -> dict[str, RawSplit] | None:
        """An image folder too large for memory (or data.in_memory=false): decoded once, in
        worker processes, into the on-disk cache, then read from there."""
        if self.cfg["source"] != "folder":
            return super().stream()
        path = self.user_path()
        folders = predefined_splits(path) or {"train": path}
        listed = {s: images.list_image_folder(f, self.cfg["channels"]) for s, f in folders.items()}
        paths = [p for files, _ in listed.values() for p in files]
        source = images.ImageFolderSource.of(paths, self.cfg["channels"], self.cfg["image_size"])
        nbytes = len(paths) * int(np.prod(source.shape)) * 4
        if not self.choose_streaming(len(paths), nbytes, "images"):
            return None
        start = time.perf_counter()
        cache, reused = build_cache(
            source, self.cache_dir, workers=self.num_workers, on_bad=self.cfg["on_bad"]
        )
        took = time.perf_counter() - start
        say(f"data: cache {cache.path} ({'reused' if reused else 'built'} in {took:.1f} s).")
        sizes = {split: len(files) for split, (files, _) in listed.items()}
        return self.views(cache, sizes, [n for _, names in listed.values() for n in names])

    def fit(self, train_inputs: np.ndarray | RecordView) -> dict[str, Any]:
        if not self.cfg["normalize"]:
            return {}
        if isinstance(train_inputs, RecordView):
            sample = train_inputs.sample(self.cfg["fit_sample"], self.cfg["split_seed"])
            return streamed_stats(sample, axes=(0, 2, 3))
        return standardize_stats(train_inputs, axes=(0, 2, 3))

    def batch_transform(self) -> Standardize:
        return Standardize(self.fitted)

    def augment_batch(self, inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return augment_images(inputs, self.cfg["augment"], generator, self.fitted)

    @property
    def spec(self) -> ImageSpec:
        return ImageSpec(*self.input_shape)
