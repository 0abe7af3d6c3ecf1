"""Images: the bundled 8x8 digits by default; class folders, MNIST and CIFAR-10 from disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from archlab.data.base import ArrayDataModule, RawSplit, standardize_stats
from archlab.models.spec import ImageSpec

DIGITS_FILE = Path(__file__).with_name("digits.npz")


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8x8 handwritten digits (UCI "Optical Recognition of Handwritten Digits", as
    scikit-learn ships them), bundled as digits.npz so that start-up does not import
    scikit-learn: (N, 1, 8, 8) float32 values 0-16, and int64 labels."""
    with np.load(DIGITS_FILE) as bundled:
        return bundled["images"][:, None].astype(np.float32), bundled["labels"].astype(np.int64)


class ImageDataModule(ArrayDataModule):
    """(N, C, H, W) float tensors, standardised per channel with train-split statistics."""

    def read(self) -> dict[str, RawSplit]:
        from archlab.data.sources import images

        source = self.cfg["source"]
        if source == "digits":
            return {"train": RawSplit(*load_digits_images())}
        if source == "folder":
            size = self.cfg["image_size"]
            size = tuple(size) if size else None
            return self.read_user_files(
                lambda path: images.load_image_folder(path, self.cfg["channels"], size)
            )
        loader = images.load_mnist if source == "mnist" else images.load_cifar10
        return {split: RawSplit(*arrays) for split, arrays in loader(self.user_path()).items()}

    def fit(self, train_inputs: np.ndarray) -> dict[str, Any]:
        if not self.cfg["normalize"]:
            return {}
        return standardize_stats(train_inputs, axes=(0, 2, 3))

    def transform(self, inputs: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(inputs)).float()
        if "mean" in self.fitted:
            x = (x - self.fitted["mean"][:, None, None]) / self.fitted["std"][:, None, None]
        return x

    @property
    def spec(self) -> ImageSpec:
        _, c, h, w = self.tensors["train"][0].shape
        return ImageSpec(c, h, w)
