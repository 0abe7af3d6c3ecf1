"""TensorBoard pictures of what a model attends to, for the same first validation examples:
cross-attention of a translator (target rows, source columns) and self-attention of a
Transformer classifier; per layer with heads averaged, and per head for the first example.

At every validation of a fit they are plain heatmaps (a colour map over the weights, a few
milliseconds); labelled figures (the tokens on the axes, ~1 s of matplotlib each) are drawn
once, for the chosen checkpoint at the final validation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.trainer.states import TrainerFn

from archlab.data.pairs import PairsDataModule
from archlab.models.attention_maps import cross_attention_maps, self_attention_maps
from archlab.records.dashboards import tensorboard_of
from archlab.records.figures import _panels

NUM_EXAMPLES = 4
_MAX_TICKS = 40  # more positions than this are drawn without tick labels
_HEATMAP_SIDE = 128  # heatmaps are scaled up by whole pixels to about this many pixels


def attention_figure(
    maps: Sequence[np.ndarray],
    rows: Sequence[Sequence[str]],
    columns: Sequence[Sequence[str]],
    titles: Sequence[str],
) -> Figure:
    """One heatmap per (T, S) weight matrix; rows attend to columns."""
    fig, axes = _panels(len(maps), (3.6, 3.0))
    for ax, weights, row, column, title in zip(axes, maps, rows, columns, titles, strict=True):
        ax.imshow(weights, cmap="viridis", vmin=0, aspect="auto")
        if len(column) <= _MAX_TICKS:
            ax.set_xticks(range(len(column)), column, fontsize=6, rotation=90)
        if len(row) <= _MAX_TICKS:
            ax.set_yticks(range(len(row)), row, fontsize=6)
        ax.set_title(title, fontsize=8)
    return fig


def _tokens(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    return [tokenizer.decode([i]) or "·" for i in ids]


def _spans(tokens: list[str], count: int) -> list[str]:
    """`tokens` grouped into `count` equal spans (a pooling encoder's output positions)."""
    if count == len(tokens):
        return tokens
    width = -(-len(tokens) // count)
    return ["".join(tokens[i * width : (i + 1) * width]) for i in range(count)]


def translation_maps(
    model: torch.nn.Module, data: PairsDataModule, source: torch.Tensor, target: torch.Tensor
) -> tuple[list[np.ndarray], list[list[str]], list[list[str]]]:
    """Per layer (B, heads, T, S') cross-attention trimmed to each example's real tokens, with
    their row (target) and column (source) labels per example."""
    maps = [m.float().cpu().numpy() for m in cross_attention_maps(model, source, target[:, :-1])]
    rows, columns = [], []
    for i in range(len(source)):
        gold = target[i, 1:].tolist()
        length = gold.index(data.eos_id) + 1 if data.eos_id in gold else len(gold)
        rows.append([*_tokens(data.target_tokenizer, gold[: length - 1]), "</s>"])
        ids = [t for t in source[i].tolist() if t != data.source_tokenizer.pad_id]
        tokens = _tokens(data.source_tokenizer, ids)
        span = -(-source.shape[1] // maps[0].shape[-1]) if maps else 1
        columns.append(_spans(tokens, -(-len(tokens) // span)))
    return maps, rows, columns


def classifier_maps(
    model: torch.nn.Module, data: Any, x: torch.Tensor
) -> tuple[list[np.ndarray], list[list[str]], list[list[str]]]:
    maps = [m.float().cpu().numpy() for m in self_attention_maps(model, x)]
    labels = []
    for i in range(len(x)):
        if hasattr(data, "tokenizer"):
            ids = [t for t in x[i].tolist() if t != data.tokenizer.pad_id]
            labels.append(_tokens(data.tokenizer, ids))
        else:
            labels.append([str(p) for p in range(maps[0].shape[-1])] if maps else [])
    return maps, labels, labels


def heatmap_grid(maps: Sequence[np.ndarray]) -> np.ndarray:
    """(T, S) weight matrices side by side as one (H, W, 3) uint8 viridis image, each scaled
    to its own maximum and padded to the largest, with a 2-pixel gap between them."""
    rows = max(m.shape[0] for m in maps)
    columns = max(m.shape[1] for m in maps)
    scale = max(1, _HEATMAP_SIDE // max(rows, columns))
    tiles = []
    for weights in maps:
        tile = np.zeros((rows, columns), dtype=np.float32)
        tile[: weights.shape[0], : weights.shape[1]] = weights / max(float(weights.max()), 1e-9)
        tile = tile.repeat(scale, 0).repeat(scale, 1)
        tiles += [colormaps["viridis"](tile)[..., :3], np.ones((rows * scale, 2, 3))]
    return (np.concatenate(tiles[:-1], axis=1) * 255).astype(np.uint8)


class AttentionMaps(Callback):
    """Draws after every validation of a fit (sanity check excepted) and after the final one."""

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        logger = tensorboard_of(trainer.loggers)
        if trainer.sanity_checking or logger is None:
            return
        if not trainer.is_global_zero:
            return
        labelled = trainer.state.fn == TrainerFn.VALIDATING
        data = trainer.datamodule
        x, y = (t[:NUM_EXAMPLES].to(pl_module.device) for t in data.tensors["val"])
        model = pl_module.model
        modes = {m: m.training for m in model.modules()}
        model.eval()
        try:
            if isinstance(data, PairsDataModule):
                maps, rows, columns = translation_maps(model, data, x, y)
            else:
                maps, rows, columns = classifier_maps(model, data, x)
        finally:
            for module, mode in modes.items():
                module.training = mode
        kind = "cross" if isinstance(data, PairsDataModule) else "self"
        group = f"attention_{kind}_final" if labelled else f"attention_{kind}"
        writer, step = logger.experiment, trainer.global_step
        sizes = [(len(r), len(c)) for r, c in zip(rows, columns, strict=True)]
        for layer, weights in enumerate(maps):
            mean = [weights[i].mean(0)[:t, :s] for i, (t, s) in enumerate(sizes)]
            t, s = sizes[0]
            heads = [head[:t, :s] for head in weights[0]]
            if not labelled:
                for name, panel in (("mean", mean), ("heads", heads)):
                    image = heatmap_grid(panel)
                    writer.add_image(f"{group}/layer{layer}_{name}", image, step, dataformats="HWC")
                continue
            titles = [f"example {i}, layer {layer}, heads averaged" for i in range(len(mean))]
            figure = attention_figure(mean, rows, columns, titles)
            writer.add_figure(f"{group}/layer{layer}_mean", figure, step)
            titles = [f"example 0, layer {layer}, head {h}" for h in range(len(heads))]
            count = len(heads)
            figure = attention_figure(heads, [rows[0]] * count, [columns[0]] * count, titles)
            writer.add_figure(f"{group}/layer{layer}_heads", figure, step)
        writer.flush()
