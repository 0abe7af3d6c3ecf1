"""Training budgets that fit the data: the knobs a user left at null, sized from the splits.

The rule (the `budget` section of the config holds its numbers; README "Budgets"):
- batch size: `batch_fraction` of the train split, within [min_batch_size, max_batch_size];
- epochs: `min_epochs`, or more, so that the run draws at least `min_examples` training
  examples (a set of 32 series is seen 594 times, 2,376 steps at batch 8; the built-in
  1,257 digits and 991 docstrings 20 times, as before; 300,000 examples 20 times);
- learning rate, with `scale_lr` (off by default: it helps the FCN and the Transformer on
  small series and sinks the RNN, README "Budgets"): `task.optimizer.lr` is then the rate at
  `max_batch_size`, and a batch sized here below it scales it down, by sqrt(batch /
  max_batch_size) for AdamW (the square-root rule for Adam), batch / max_batch_size for SGD
  (the linear rule): 32 series train at batch 8 with 0.003 x 0.354 = 0.00106;
- warmup: `task.scheduler.warmup_steps`, kept to at most half of all optimizer steps, so
  that the schedule still has room to decay;
- early stopping: on when the epochs were sized here, the learning rate is constant (a cosine
  schedule stopped halfway never anneals; the best checkpoint on val already guards against
  overfitting) and the val split can judge, with a patience of a fifth of the epochs (>= 5);
- a val split of fewer than `small_val` examples is too small to choose a checkpoint: the last
  one is kept and early stopping is off;
- gradient clipping (`trainer.gradient_clip_val`): the norm is clipped at `transformer_clip`
  (1.0) for the Transformer, its usual recipe (it lifts it above 1-NN DTW on two UCR sets
  and costs nothing measured on text), not for the CNN and the RNN (it sank the RNN on
  ArrowHead);
- token dropout (`data.augment.token_dropout`): `rnn_token_dropout` (0.1) for an RNN that
  classifies text, the one default text classifier with no dropout at work (3 points on the
  docstrings in the mean of three seeds, the drug reviews' accuracy unchanged within their
  noise, README "Budgets"); 0 for the CNN, the Transformer and every other objective.
A value the user set (not null) always wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf


@dataclass(frozen=True)
class Budget:
    """The resolved budget of one run, and which parts of it archlab chose."""

    train: int
    val: int
    batch_size: int
    lr: float
    epochs: int
    steps_per_epoch: int
    total_steps: int
    warmup: int
    early_stopping: bool
    patience: int
    choose_on_val: bool
    clip: float | None
    token_dropout: float | None  # text only
    auto: frozenset[str]

    def describe(self, monitor: str) -> list[str]:
        """What the run will do, for the console: one line, plus one when val is too small."""

        def tag(key: str) -> str:
            return " (auto)" if key in self.auto else ""

        stopping = (
            f"early stopping after {self.patience} validations without progress"
            if self.early_stopping
            else "no early stopping"
        )
        lines = [
            f"budget: {self.epochs} epochs{tag('epochs')} x {self.steps_per_epoch} steps = "
            f"{self.total_steps} optimizer steps, batch {self.batch_size}{tag('batch')}, "
            f"lr {self.lr:.3g}{tag('lr')}, warmup {self.warmup} steps, {stopping}"
            + (f", gradient norm clipped at {self.clip:g}{tag('clip')}" if self.clip else "")
            + (
                f", token dropout {self.token_dropout:g}{tag('token_dropout')}"
                if self.token_dropout
                else ""
            )
        ]
        if not self.choose_on_val:
            lines.append(
                f"val split of {self.val} examples is too small to choose a checkpoint on "
                f"{monitor}: keeping the last one (budget.small_val=0 chooses on val anyway)"
            )
        return lines

    def record(self) -> dict[str, Any]:
        """For metrics.json."""
        return {
            "batch_size": self.batch_size,
            "lr": self.lr,
            "epochs": self.epochs,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup,
            "early_stopping": self.early_stopping,
            "checkpoint": "best on val" if self.choose_on_val else "last",
            "gradient_clip_val": self.clip,
            "token_dropout": self.token_dropout,
            "auto": sorted(self.auto),
        }


def auto_batch_size(train: int, budget: Any) -> int:
    """`batch_fraction` of the train split, within [min_batch_size, max_batch_size]."""
    size = int(train * budget["batch_fraction"])
    return max(budget["min_batch_size"], min(budget["max_batch_size"], size))


def steps_per_epoch(batches: int, trainer: Any) -> int:
    """Optimizer steps per epoch for `batches` training batches per process."""
    limit = trainer["limit_train_batches"]
    if isinstance(limit, int) and not isinstance(limit, bool):
        batches = min(batches, limit)
    elif isinstance(limit, float):
        batches = max(1, int(batches * limit))
    return max(1, math.ceil(batches / trainer["accumulate_grad_batches"]))


def scaled_lr(lr: float, batch: int, budget: Any, optimizer: str) -> float:
    """`lr` (the rate at `max_batch_size`) at a smaller auto batch: square-root rule for
    AdamW, linear for SGD."""
    ratio = batch / budget["max_batch_size"]
    return lr * (ratio if optimizer == "sgd" else math.sqrt(ratio))


def capped_warmup(warmup: int, total_steps: int) -> int:
    """Warmup kept to at most half of the steps, so that the learning rate can still decay."""
    return max(0, min(warmup, total_steps // 2))


def resolve_budget(cfg: DictConfig, train: int, val: int, world: int = 1) -> Budget:
    """The budget of a run on `train` / `val` examples spread over `world` processes."""
    rule, trainer = cfg.budget, cfg.trainer
    auto = set()
    batch = cfg.data.batch_size
    if batch is None:
        batch, auto = auto_batch_size(train, rule), auto | {"batch"}
    lr = cfg.task.optimizer.lr
    if "batch" in auto and rule.scale_lr and batch < rule.max_batch_size:
        lr, auto = scaled_lr(lr, batch, rule, cfg.task.optimizer.name), auto | {"lr"}
    per_epoch = steps_per_epoch(math.ceil(train / (batch * world)), trainer)
    epochs = trainer.max_epochs
    if epochs is None:
        drawn = min(train, per_epoch * batch * world * trainer.accumulate_grad_batches)
        epochs = max(rule.min_epochs, math.ceil(rule.min_examples / max(drawn, 1)))
        auto.add("epochs")
    total = per_epoch * epochs if epochs >= 0 else 0
    if trainer.max_steps > 0:
        total = min(total, trainer.max_steps) if total else trainer.max_steps
    warmup = capped_warmup(cfg.task.scheduler.warmup_steps, total)
    choose = val >= rule.small_val
    stop = cfg.callbacks.early_stopping
    # Auto: only where it cannot cut an annealing schedule short (a cosine run stopped halfway
    # never reaches its small learning rates; the best checkpoint on val already guards
    # against overfitting), only where there is a validation to stop on, and not when
    # `trainer.max_steps` bounds the run (it may end before the first validation).
    validates = trainer.limit_val_batches != 0 and trainer.max_steps <= 0
    constant = cfg.task.scheduler.name == "constant"
    stopping = "epochs" in auto and choose and validates and constant
    stopping = stopping if stop.enabled is None else stop.enabled
    patience = stop.patience if stop.patience is not None else max(5, epochs // 5)
    clip = trainer.gradient_clip_val
    if clip is None and cfg.model.name == "transformer" and rule.transformer_clip > 0:
        clip, auto = rule.transformer_clip, auto | {"clip"}
    token_dropout = None
    if cfg.data.modality == "text":
        token_dropout = cfg.data.augment.token_dropout
        if token_dropout is None:
            rnn_classifier = cfg.model.name == "rnn" and cfg.task.name == "classify"
            token_dropout = rule.rnn_token_dropout if rnn_classifier else 0.0
            auto = auto | {"token_dropout"} if token_dropout else auto
    return Budget(
        train,
        val,
        batch,
        lr,
        epochs,
        per_epoch,
        total,
        warmup,
        stopping,
        patience,
        choose,
        clip,
        token_dropout,
        frozenset(auto),
    )


def apply_budget(cfg: DictConfig, budget: Budget) -> DictConfig:
    """`cfg` with every auto knob replaced by its resolved value (read-only, like `cfg`)."""
    plain = OmegaConf.to_container(cfg)
    plain["data"]["batch_size"] = budget.batch_size
    plain["task"]["optimizer"]["lr"] = budget.lr
    plain["trainer"]["max_epochs"] = budget.epochs
    plain["task"]["scheduler"]["warmup_steps"] = budget.warmup
    plain["trainer"]["gradient_clip_val"] = budget.clip
    if budget.token_dropout is not None:
        plain["data"]["augment"]["token_dropout"] = budget.token_dropout
    plain["callbacks"]["early_stopping"] |= {
        "enabled": budget.early_stopping,
        "patience": budget.patience,
    }
    if not budget.choose_on_val:
        plain["callbacks"]["checkpoint"]["monitor"] = None
    resolved = OmegaConf.create(plain)
    OmegaConf.set_readonly(resolved, True)
    return resolved
