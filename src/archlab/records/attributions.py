"""Which parts of an input a classifier's prediction rests on, with Captum: integrated
gradients (or input x gradient) over image pixels, series steps, or token embeddings, summed
to one non-negative score per pixel, step or token; and pictures of them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from captum.attr import InputXGradient, IntegratedGradients, LayerIntegratedGradients
from matplotlib.figure import Figure
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.trainer.states import TrainerFn
from torch import nn

from archlab.errors import ConfigError
from archlab.records.dashboards import tensorboard_of
from archlab.records.figures import _panels

METHODS = ("integrated_gradients", "input_x_gradient")
STEPS = 32  # integrated gradients: points on the path from the baseline to the input
DRAWS = 8  # text: baselines drawn from the background texts, attributions averaged
NUM_EXAMPLES = 4  # validation examples drawn in TensorBoard


def _token_scores(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, background: torch.Tensor
) -> torch.Tensor:
    """Integrated gradients on the token embeddings, averaged over baselines that are real
    texts (Erion et al.'s expected gradients): an unseen baseline such as all-<unk> would
    credit every token with moving the model off its data, relevant or not."""
    explainer = LayerIntegratedGradients(model, model.stem.embed)
    g = torch.Generator().manual_seed(0)
    total = torch.zeros(x.shape, dtype=torch.float32)
    for _ in range(DRAWS):
        rows = torch.randint(len(background), (len(x),), generator=g)
        baseline = background[rows, : x.shape[1]].to(x.device)
        scores = explainer.attribute(x, baseline, target=target, n_steps=STEPS)
        total += scores.sum(-1).abs().detach().float().cpu()
    return total / DRAWS * (x != model.stem.pad_id).cpu()


def attribute(
    model: nn.Module,
    x: torch.Tensor,
    method: str = "integrated_gradients",
    background: torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative scores for the predicted class, (B, H, W) for images and (B, T) for series
    and tokens, and the predicted classes. Numeric inputs: baseline zeros (the training mean,
    after standardising). Tokens: integrated gradients only (input x gradient on embeddings
    credits tokens the model ignores), from baselines drawn from `background` token ids (the
    training texts)."""
    if x.dtype == torch.long and (method != METHODS[0] or background is None):
        raise ConfigError(
            "Token inputs are explained with integrated gradients from real texts: use "
            "method integrated_gradients and give background texts."
        )
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            predicted = model(x).argmax(-1)
        if x.dtype == torch.long:
            scores = _token_scores(model, x, predicted, background)
        else:
            x = x.detach().clone().requires_grad_(True)
            if method == METHODS[0]:
                scores = IntegratedGradients(model).attribute(
                    x, torch.zeros_like(x), target=predicted, n_steps=STEPS
                )
            else:
                scores = InputXGradient(model).attribute(x, target=predicted)
            scores = scores.abs().sum(1 if x.ndim == 4 else -1)
    finally:
        for module, mode in modes.items():
            module.training = mode
    return scores.detach().float().cpu().numpy(), predicted.cpu().numpy()


def attribution_figure(
    inputs: np.ndarray,
    scores: np.ndarray,
    titles: Sequence[str],
    tokens: Sequence[Sequence[str]] | None = None,
) -> Figure:
    """Images with their scores overlaid, series over a shaded strip of scores, or tokens
    under a heat strip; one panel per example."""
    fig, axes = _panels(len(scores), (3.2, 2.6))
    for i, ax in enumerate(axes):
        score = scores[i] / max(float(scores[i].max()), 1e-12)
        if tokens is not None:
            words = tokens[i]
            ax.imshow(score[None, : len(words)], cmap="Reds", vmin=0, vmax=1, aspect="auto")
            ax.set_xticks(range(len(words)), words, rotation=90, fontsize=6)
            ax.set_yticks([])
        elif inputs.ndim == 4:
            image = inputs[i]
            pixels = image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1).mean(-1)
            ax.imshow(pixels, cmap="gray")
            heat = np.zeros((*score.shape, 4))
            heat[..., 0], heat[..., 3] = 1.0, 0.85 * score  # red, opaque where it counts
            ax.imshow(heat)
            ax.axis("off")
        else:
            series = inputs[i]
            low, high = float(series.min()), float(series.max())
            extent = (-0.5, len(series) - 0.5, low, high if high > low else low + 1)
            ax.imshow(score[None], cmap="Reds", vmin=0, vmax=1, aspect="auto", extent=extent)
            ax.plot(series, linewidth=1, color="black")
        ax.set_title(titles[i], fontsize=8)
    return fig


def token_labels(tokenizer: Any, x: torch.Tensor) -> list[list[str]]:
    """Each example's real tokens as text, for tick labels."""
    return [
        [tokenizer.decode([i]) or "·" for i in row if i != tokenizer.pad_id] for row in x.tolist()
    ]


class Attributions(Callback):
    """Draws attributions for the first validation examples after the final validation of
    the chosen checkpoint (not at every epoch: integrated gradients costs STEPS passes)."""

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        logger = tensorboard_of(trainer.loggers)
        if trainer.state.fn != TrainerFn.VALIDATING or logger is None:
            return
        if next(pl_module.model.parameters()).dtype != torch.float32:
            return  # bf16-true weights: integrated gradients in bf16 is too coarse to draw
        if not trainer.is_global_zero:
            return
        data = trainer.datamodule
        x = data.tensors["val"][0][:NUM_EXAMPLES].to(pl_module.device)
        background = data.tensors["train"][0][:256] if x.dtype == torch.long else None
        # Validation runs without autograd; attributions need gradients.
        with torch.inference_mode(False), torch.enable_grad():
            scores, predicted = attribute(pl_module.model, x, background=background)
        tokens = token_labels(data.tokenizer, x) if hasattr(data, "tokenizer") else None
        titles = [f"predicted {data.classes[p]}" for p in predicted]
        figure = attribution_figure(x.float().cpu().numpy(), scores, titles, tokens)
        logger.experiment.add_figure("attributions/val", figure, trainer.global_step)
        logger.experiment.flush()
