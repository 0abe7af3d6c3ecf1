"""Figures for TensorBoard: a confusion matrix and a grid of examples with their predictions.

Pure matplotlib on the Agg canvas (no display, thread-safe); callers log the returned figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def confusion_figure(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str) -> Figure:
    """Counts with rows = true class, columns = predicted; cells shaded by row share."""
    counts = np.asarray(matrix, dtype=np.int64)
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    size = 2.5 + 0.45 * len(classes)
    fig = Figure(figsize=(size, size), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(classes))
    ax.set_xticks(ticks, classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(classes) <= 20:
        for (row, col), count in np.ndenumerate(counts):
            color = "white" if shares[row, col] > 0.5 else "black"
            ax.text(col, row, str(count), ha="center", va="center", fontsize=7, color=color)
    return fig


def _caption(true: str, predicted: str) -> str:
    return f"{true} ✓" if true == predicted else f"{true} → {predicted} ✗"


def _panels(count: int, size: tuple[float, float]) -> tuple[Figure, list[Any]]:
    """A figure of `count` panels, four to a row, each `size` inches."""
    columns = min(4, count)
    rows = -(-count // columns)
    fig = Figure(figsize=(size[0] * columns, size[1] * rows), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(rows, columns, i + 1) for i in range(count)]


def image_grid(images: np.ndarray, true: Sequence[str], predicted: Sequence[str]) -> Figure:
    """(N, C, H, W) images, each titled with its true and predicted class."""
    fig, axes = _panels(len(images), (2.2, 2.4))
    for i, (ax, image) in enumerate(zip(axes, images, strict=True)):
        pixels = image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)
        low, high = float(pixels.min()), float(pixels.max())
        ax.imshow((pixels - low) / (high - low or 1.0), cmap="gray" if pixels.ndim == 2 else None)
        ax.set_title(_caption(true[i], predicted[i]), fontsize=8)
        ax.axis("off")
    return fig


def series_grid(series: np.ndarray, true: Sequence[str], predicted: Sequence[str]) -> Figure:
    """(N, T, F) numeric sequences, one panel each (every feature a line)."""
    fig, axes = _panels(len(series), (3.0, 2.0))
    for i, (ax, values) in enumerate(zip(axes, series, strict=True)):
        ax.plot(values, linewidth=1)
        ax.set_title(_caption(true[i], predicted[i]), fontsize=8)
        ax.tick_params(labelsize=6)
    return fig


def text_table(texts: Sequence[str], true: Sequence[str], predicted: Sequence[str]) -> str:
    """A markdown table for TensorBoard's text tab."""
    rows = ["| true | predicted | text |", "| --- | --- | --- |"]
    for text, t, p in zip(texts, true, predicted, strict=True):
        shown = " ".join(text.split())[:300].replace("|", "\\|")
        rows.append(f"| {t} | {p}{'' if t == p else ' ✗'} | {shown} |")
    return "\n".join(rows)
