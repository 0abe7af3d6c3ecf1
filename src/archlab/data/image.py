"""Images: scikit-learn's bundled digits by default; class folders, MNIST and CIFAR-10 from disk."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from archlab.data.base import ArrayDataModule, RawSplit, standardize_stats
from archlab.data.sources import images
from archlab.data.transforms import image_tensor
from archlab.models.spec import ImageSpec


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8x8 handwritten digits that ship with scikit-learn: (N, 1, 8, 8), values 0-16."""
    from sklearn.datasets import load_digits  # ~0.65 s with scipy: only for this data set

    digits = load_digits()
    return digits.images[:, None].astype(np.float32), digits.target


class ImageDataModule(ArrayDataModule):
    """(N, C, H, W) float tensors, standardised per channel with train-split statistics."""

    def read(self) -> dict[str, RawSplit]:
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
        return image_tensor(inputs, self.fitted)

    @property
    def spec(self) -> ImageSpec:
        _, c, h, w = self.tensors["train"][0].shape
        return ImageSpec(c, h, w)
