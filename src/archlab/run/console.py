"""What a run prints: what it will do before training, a table of its final metrics after, and
none of the libraries' chatter in between (real warnings still reach the user)."""

from __future__ import annotations

import logging
import math
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.callbacks.progress.tqdm_progress import Tqdm
from torch import nn

from archlab.config.budget import Budget

# Lightning INFO lines that say nothing a user acts on: the hardware summary (archlab prints
# its own), the litmodels/litlogger advertisements, the stepping-batches estimate, "fit
# stopped", "`weights_only` was not set" at every checkpoint save, alarming while archlab
# always loads with weights_only=True, and "Loaded model weights" before the final evaluation
# (archlab's table says "best checkpoint"). Others ("Restored all states ...") and warnings pass.
_CHATTER = (
    "GPU available:",
    "TPU available:",
    "HPU available:",
    "💡 Tip:",
    "LOCAL_RANK:",
    "Loading `train_dataloader` to estimate",
    "`Trainer.fit` stopped:",
    "`weights_only` was not set",
    "Restoring states from the checkpoint path",
    "Loaded model weights from the checkpoint",
)
_CHATTY_LOGGERS = (
    "pytorch_lightning.utilities.rank_zero",
    "pytorch_lightning.trainer.connectors.checkpoint_connector",
    "pytorch_lightning.accelerators.cuda",
    "lightning_fabric.utilities.rank_zero",
)
# Lightning's own use of a torch API it has yet to update: nothing the user can change.
_LIBRARY_DEPRECATIONS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",)


class _DropChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_CHATTER)


_DROP_CHATTER = _DropChatter()


def quiet_libraries() -> None:
    """Library chatter off at its source: a filter on the loggers that emit the lines above,
    and one for each library-internal deprecation (other warnings still reach the user)."""
    for name in _CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if _DROP_CHATTER not in logger.filters:
            logger.addFilter(_DROP_CHATTER)
    for message in _LIBRARY_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message)


class ConsoleProgress(TQDMProgressBar):
    """One progress bar, the training one (validation and test add no bars of their own); when
    the output is not a terminal, one line per epoch instead (at most ~20 of them)."""

    def __init__(self, refresh_rate: int, lines: bool | None = None) -> None:
        super().__init__(refresh_rate=refresh_rate)
        self.lines = not sys.stdout.isatty() if lines is None else lines

    def init_sanity_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def init_validation_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def init_test_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def init_train_tqdm(self) -> Tqdm:
        return Tqdm(
            desc=self.train_description,
            position=2 * self.process_position,
            disable=self.is_disabled or self.lines,
            leave=True,
            dynamic_ncols=True,
            file=sys.stdout,
            smoothing=0,
            bar_format=self.BAR_FORMAT,
        )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if not self.lines or not trainer.is_global_zero:
            return
        epoch, epochs = trainer.current_epoch + 1, trainer.max_epochs
        every = max(1, math.ceil(epochs / 20)) if epochs and epochs > 0 else 1
        if epoch % every and epoch != epochs:
            return
        shown = {
            k: float(v)
            for k, v in sorted(trainer.progress_bar_metrics.items())
            if isinstance(v, int | float) or getattr(v, "numel", lambda: 0)() == 1
        }
        values = ", ".join(f"{k} {v:.4g}" for k, v in shown.items())
        print(f"epoch {epoch}/{epochs}: step {trainer.global_step}, {values}", flush=True)


def announce(
    cfg: DictConfig,
    sizes: Mapping[str, int],
    classes: int,
    model: nn.Module,
    budget: Budget,
    run_dir: Path,
) -> None:
    """Model, data sizes, budget and run directory, before training starts."""
    params = sum(p.numel() for p in model.parameters())
    data = cfg.data
    split = " / ".join(f"{sizes[s]:,} {s}" for s in ("train", "val", "test"))
    lines = [
        f"archlab-train: {cfg.model.name} on {data.modality} ({data.source}): {split} "
        f"examples{f', {classes} classes' if classes else ''}, {params:,} parameters",
        *budget.describe(cfg.callbacks.checkpoint.monitor or "val"),
        f"run directory: {run_dir}",
    ]
    print("\n".join(lines), flush=True)


def metrics_table(metrics: Mapping[str, float], checkpoint: str) -> str:
    """One row per metric, one column per split (val, test)."""
    splits = [s for s in ("val", "test") if any(k.startswith(f"{s}/") for k in metrics)]
    names = sorted({k.split("/", 1)[1] for k in metrics if k.split("/", 1)[0] in splits})
    width = max((len(n) for n in names), default=6) + 2
    rows = [
        f"final metrics ({checkpoint} checkpoint):",
        " " * width + "".join(f"{s:>10}" for s in splits),
    ]
    for name in names:
        cells = (metrics.get(f"{s}/{name}") for s in splits)
        rows.append(
            f"{name:<{width}}"
            + "".join(f"{v:>10.4f}" if v is not None else f"{'':>10}" for v in cells)
        )
    return "\n".join(rows)
