"""Budgets sized from the data: enough training for 45 examples or 300,000, warmup within
half of the steps, early stopping, the small-validation rule; explicit settings win."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from omegaconf import OmegaConf

from archlab.config.budget import apply_budget, resolve_budget
from archlab.config.paths import config_dir
from archlab.config.preflight import compose_config
from archlab.config.schema import BudgetConfig
from archlab.config.validate import validate
from archlab.tasks.optim import build_scheduler


def _cfg(*overrides: str):
    return validate(compose_config("train", list(overrides)))


@pytest.fixture(scope="module")
def default_cfg():
    return _cfg()


def test_a_tiny_split_gets_small_batches_and_enough_steps(default_cfg) -> None:
    """45 train / 5 val examples (a UCR set): batch 8, not 1 step per epoch; 19,000 examples
    drawn: 423 epochs, 2,538 steps (the epoch budget of 20 made 20 steps)."""
    budget = resolve_budget(default_cfg, train=45, val=5)
    assert budget.batch_size == 8
    assert budget.steps_per_epoch == 6
    assert budget.epochs == 423 and budget.total_steps == 2538
    assert budget.warmup == 50
    # 5 val examples cannot choose a checkpoint nor stop training.
    assert not budget.choose_on_val and not budget.early_stopping
    resolved = apply_budget(default_cfg, budget)
    assert resolved.callbacks.checkpoint.monitor is None
    assert resolved.trainer.max_epochs == 423 and resolved.data.batch_size == 8
    text = "\n".join(budget.describe("val/acc"))
    assert "423 epochs (auto) x 6 steps = 2538 optimizer steps, batch 8 (auto), lr 0.003," in text
    assert "too small to choose a checkpoint" in text


def test_a_small_split_gets_a_tenth_as_batch(default_cfg) -> None:
    budget = resolve_budget(default_cfg, train=300, val=60)
    assert budget.batch_size == 30 and budget.steps_per_epoch == 10
    assert budget.epochs == 64 and budget.total_steps == 640  # 64 x 300 >= 19,000 examples
    assert budget.choose_on_val and budget.patience == 12
    assert apply_budget(default_cfg, budget).callbacks.checkpoint.monitor == "val/acc"
    # The default cosine schedule must run to its end: no early stopping to cut it short.
    assert not budget.early_stopping


def test_scale_lr_scales_the_learning_rate_down_with_a_smaller_auto_batch() -> None:
    """With budget.scale_lr, task.optimizer.lr is the rate at batch 64: AdamW at batch 8 trains
    at 0.003 x sqrt(1/8), SGD at 0.003 / 8; batch 64, a batch the user set, or the default
    (scale_lr=false) keep it as set."""
    scaled = _cfg("budget.scale_lr=true")
    adamw = resolve_budget(scaled, train=45, val=5)
    assert adamw.lr == pytest.approx(0.003 / 8**0.5) and "lr" in adamw.auto
    assert apply_budget(scaled, adamw).task.optimizer.lr == pytest.approx(0.0010607, rel=1e-4)
    assert "batch 8 (auto), lr 0.00106 (auto)," in adamw.describe("val/acc")[0]
    sgd = _cfg("budget.scale_lr=true", "task.optimizer.name=sgd", "task.optimizer.lr=0.1")
    assert resolve_budget(sgd, 45, 5).lr == pytest.approx(0.1 / 8)
    assert resolve_budget(scaled, train=1257, val=180).lr == 0.003  # batch 64
    for kept in (_cfg("budget.scale_lr=true", "data.batch_size=8"), _cfg()):
        budget = resolve_budget(kept, train=45, val=5)
        assert budget.lr == 0.003 and "lr" not in budget.auto
        assert "lr 0.003," in budget.describe("val/acc")[0]


def test_auto_early_stopping_with_a_constant_learning_rate() -> None:
    cfg = _cfg("task.scheduler.name=constant")
    assert resolve_budget(cfg, train=300, val=60).early_stopping
    assert not resolve_budget(cfg, train=45, val=5).early_stopping  # val too small
    no_val = _cfg("task.scheduler.name=constant", "trainer.limit_val_batches=0")
    assert not resolve_budget(no_val, train=300, val=60).early_stopping


def test_only_a_transformer_gets_its_gradient_norm_clipped_unless_set() -> None:
    """null trainer.gradient_clip_val: 1.0 for the Transformer, no clipping for the CNN and
    the RNN; a value the user sets (0 included) wins, and the trainer receives it."""
    for model, expected in (("transformer", 1.0), ("cnn", None), ("rnn", None)):
        cfg = _cfg(f"model={model}")
        budget = resolve_budget(cfg, train=45, val=5)
        assert budget.clip == expected, model
        assert apply_budget(cfg, budget).trainer.gradient_clip_val == expected
        assert ("gradient norm clipped at 1" in budget.describe("val/acc")[0]) == bool(expected)
    for value in (0.0, 0.5):
        cfg = _cfg("model=transformer", f"trainer.gradient_clip_val={value}")
        assert resolve_budget(cfg, train=45, val=5).clip == value
    cfg = _cfg("model=transformer", "budget.transformer_clip=0")
    assert resolve_budget(cfg, train=45, val=5).clip is None


def test_only_an_rnn_classifying_text_drops_tokens_unless_set() -> None:
    """null data.augment.token_dropout: 0.1 for an RNN that classifies text, 0 for the CNN,
    the Transformer and an RNN language model; a value the user sets (0 included) wins, and
    the data receive it. Series and images have no tokens to drop."""
    cases = (("rnn", "classify", 0.1), ("cnn", "classify", 0.0), ("transformer", "classify", 0.0))
    for model, task, expected in (*cases, ("rnn", "lm", 0.0)):
        cfg = _cfg(f"model={model}", "data=text", f"task={task}")
        budget = resolve_budget(cfg, train=540, val=60)
        assert budget.token_dropout == expected, (model, task)
        assert apply_budget(cfg, budget).data.augment.token_dropout == expected
        said = "token dropout 0.1 (auto)" in budget.describe("val/acc")[0]
        assert said == bool(expected), (model, task)
    for model, value in (("rnn", 0.0), ("cnn", 0.3)):
        cfg = _cfg(f"model={model}", "data=text", f"data.augment.token_dropout={value}")
        budget = resolve_budget(cfg, train=540, val=60)
        assert budget.token_dropout == value and "token_dropout" not in budget.auto
    cfg = _cfg("model=rnn", "data=text", "budget.rnn_token_dropout=0")
    assert resolve_budget(cfg, train=540, val=60).token_dropout == 0.0
    cfg = _cfg("model=rnn", "data=sequence")
    assert resolve_budget(cfg, train=540, val=60).token_dropout is None


def test_the_built_in_digits_keep_their_twenty_epochs(default_cfg) -> None:
    """1,257 train / 180 val: batch 64, 20 epochs of 20 steps, as before budgets were sized."""
    budget = resolve_budget(default_cfg, train=1257, val=180)
    assert (budget.batch_size, budget.epochs, budget.total_steps) == (64, 20, 400)
    assert budget.warmup == 50 and budget.choose_on_val


def test_a_large_split_keeps_batch_64_and_twenty_epochs(default_cfg) -> None:
    budget = resolve_budget(default_cfg, train=300_000, val=30_000)
    assert budget.batch_size == 64
    assert budget.epochs == 20 and budget.total_steps == 20 * 4688
    assert budget.warmup == 50


def test_the_budget_counts_processes_and_accumulation() -> None:
    cfg = _cfg("trainer.accumulate_grad_batches=2")
    budget = resolve_budget(cfg, train=6400, val=700, world=2)
    assert budget.steps_per_epoch == 25  # 6400 / (64 x 2 processes) / 2 accumulated


def test_explicit_settings_win() -> None:
    cfg = _cfg(
        "data.batch_size=16",
        "trainer.max_epochs=3",
        "task.scheduler.warmup_steps=7",
        "callbacks=early_stopping",
        "callbacks.early_stopping.patience=2",
        "budget.small_val=0",
    )
    budget = resolve_budget(cfg, train=45, val=5)
    # 3 steps per epoch x 3 epochs: the 7 warmup steps are kept to half of the 9.
    assert (budget.batch_size, budget.epochs, budget.warmup) == (16, 3, 4)
    assert budget.early_stopping and budget.patience == 2 and budget.choose_on_val
    assert budget.auto == frozenset()
    assert "(auto)" not in budget.describe("val/acc")[0]


def test_warmup_longer_than_training_still_leaves_the_schedule_room_to_decay() -> None:
    """The old cap (total_steps - 1) climbed for 19 of 20 steps and fell to 0 in one."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    cfg = {"name": "cosine", "warmup_steps": 50, "min_lr_ratio": 0.0}
    scheduler = build_scheduler(optimizer, cfg, total_steps=20)
    lrs = []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    peak = lrs.index(max(lrs))
    assert peak == 10
    assert lrs[15] > 0.3 * max(lrs)  # halfway down the cosine, not at zero


def test_budget_yaml_equals_its_schema() -> None:
    raw = OmegaConf.load(config_dir() / "budget" / "default.yaml")
    assert dict(raw) == dataclasses.asdict(BudgetConfig())
