"""Images: scikit-learn's bundled digits by default; class folders, MNIST and CIFAR-10 from disk;
unlabelled images (any folder, generated glyphs) for pretraining."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from archlab.data.base import ArrayDataModule, RawSplit, standardize_stats, unlabelled
from archlab.models.spec import ImageSpec

GLYPHS = 200_000  # images the `glyphs` corpus generates unless data.max_examples says otherwise


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8x8 handwritten digits that ship with scikit-learn: (N, 1, 8, 8), values 0-16."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images[:, None].astype(np.float32), digits.target


class ImageDataModule(ArrayDataModule):
    """(N, C, H, W) float tensors, standardised per channel with train-split statistics."""

    def read(self) -> dict[str, RawSplit]:
        from archlab.data.sources import images

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
