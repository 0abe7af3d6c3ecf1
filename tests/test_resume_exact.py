"""A run killed at any step and resumed from its newest checkpoint ends bit-for-bit like the
uninterrupted run: same batches in the same order, same dropout masks, same optimizer,
scheduler and loop position. In-process, with a real Lightning Trainer and archlab's pieces."""

from __future__ import annotations

import io
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.types import _Stateful
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from archlab.checkpointing.preemption import LastCheckpoint, Preempted
from archlab.checkpointing.rng_state import RNG_KEY, RNGStateCallback
from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.data import build_datamodule
from archlab.data.batches import RestoreLoaderPosition, ResumableLoader, tensor_loader
from archlab.models import build_classifier
from archlab.tasks.classify import ClassificationTask

# A small CNN with dropout on the bundled digits: 3 epochs x 7 batches of 32.
CONFIG = ("model.channels=[8,16]", "model.fc_dims=[32]", "model.dropout=0.2", "data.batch_size=32")
EPOCHS, BATCHES = 3, 7


@pytest.fixture(scope="module", autouse=True)
def _isolated_global_state():
    """Trainer(deterministic=True) and seed_everything change process-wide flags and env."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with mock.patch.dict(os.environ):
        yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


class Crash(Exception):
    """Stands for a kill: the process dies after the step, before any further save."""


class CrashAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *_: Any) -> None:
        if trainer.global_step == self.step:
            raise Crash


class RecordBatches(Callback):
    """The labels of the batch trained at each global step: shows which batches came when."""

    def __init__(self) -> None:
        self.seen: dict[int, torch.Tensor] = {}

    def on_train_batch_start(self, trainer: pl.Trainer, _: Any, batch: Any, __: int) -> None:
        self.seen[trainer.global_step] = batch[1].clone()


@dataclass
class Run:
    task: ClassificationTask
    trainer: pl.Trainer
    datamodule: Any
    batches: dict[int, torch.Tensor]


def _fit(
    checkpoints: Path,
    every_n_steps: int,
    *,
    ckpt_path: Path | None = None,
    callbacks: tuple[Callback, ...] = (),
    rng_callback: bool = True,
    **trainer_kwargs: Any,
) -> Run:
    """One `archlab-train`-like fit (fresh seed, data, model, Trainer), as a new process would."""
    cfg = validate(compose_config("train", CONFIG))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg.data)
    datamodule.setup("fit")
    model = build_classifier(cfg.model, datamodule.spec, datamodule.num_classes)
    task = ClassificationTask(
        model, datamodule.num_classes, cfg.task, hparams=OmegaConf.to_container(cfg)
    )
    record = RecordBatches()
    last = ModelCheckpoint(
        dirpath=checkpoints, every_n_train_steps=every_n_steps, save_last=True, save_top_k=0
    )
    options = {"max_epochs": EPOCHS, "limit_train_batches": BATCHES, "limit_val_batches": 2}
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        deterministic=True,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[
            last,
            record,
            RestoreLoaderPosition(),
            *([RNGStateCallback()] if rng_callback else []),
            *callbacks,
        ],
        **(options | trainer_kwargs),
    )
    trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    return Run(task, trainer, datamodule, record.seen)


def _crash_then_resume(
    checkpoints: Path, every_n_steps: int, crash_at: int, **kwargs: Any
) -> tuple[Run, int]:
    """A fit killed after step `crash_at`, then a fresh one resumed from its last.ckpt."""
    with pytest.raises(Crash):
        _fit(checkpoints, every_n_steps, callbacks=(CrashAt(crash_at),), **kwargs)
    last = checkpoints / "last.ckpt"
    saved_step = torch.load(last, weights_only=True)["global_step"]
    return _fit(checkpoints, every_n_steps, ckpt_path=last, **kwargs), saved_step


def _assert_same_end(resumed: Run, reference: Run, saved_step: int) -> None:
    assert resumed.trainer.global_step == reference.trainer.global_step == EPOCHS * BATCHES
    assert sorted(resumed.batches) == list(range(saved_step, EPOCHS * BATCHES))
    for step, labels in resumed.batches.items():
        assert torch.equal(labels, reference.batches[step]), f"other batch at step {step}"
    expected = reference.task.model.state_dict()
    for name, value in resumed.task.model.state_dict().items():
        assert torch.equal(value, expected[name]), name
    metrics = reference.trainer.callback_metrics
    assert metrics and all(
        torch.equal(v, metrics[k]) for k, v in resumed.trainer.callback_metrics.items()
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _fit(tmp_path_factory.mktemp("uninterrupted"), every_n_steps=3)


@pytest.mark.parametrize(
    ("every_n_steps", "crash_at", "saved_step"),
    [(3, 10, 9), (7, 16, 14)],
    ids=["checkpoint-mid-epoch", "checkpoint-on-last-batch-of-epoch"],
)
def test_a_resumed_run_ends_exactly_like_an_uninterrupted_one(
    uninterrupted: Run, tmp_path: Path, every_n_steps: int, crash_at: int, saved_step: int
) -> None:
    resumed, saved = _crash_then_resume(tmp_path, every_n_steps, crash_at)
    assert saved == saved_step
    _assert_same_end(resumed, uninterrupted, saved_step)


def test_without_the_saved_rng_states_the_resumed_dropout_differs(
    uninterrupted: Run, tmp_path: Path
) -> None:
    """The control: same batches, yet other weights, so the test above does test the RNG."""
    resumed, _ = _crash_then_resume(tmp_path, 3, 10, rng_callback=False)
    assert all(torch.equal(b, uninterrupted.batches[s]) for s, b in resumed.batches.items())
    expected = uninterrupted.task.model.state_dict()
    assert not all(torch.equal(v, expected[k]) for k, v in resumed.task.model.state_dict().items())


def test_checkpoints_hold_the_loader_position_and_rng_states(tmp_path: Path) -> None:
    with pytest.raises(Crash):
        _fit(tmp_path, 3, callbacks=(CrashAt(10),))
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)
    # step 9 is the 2nd batch of epoch 1 (7 batches per epoch)
    assert checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "batches": 2}
    ]
    assert set(checkpoint[RNG_KEY]) >= {"python", "numpy", "torch"}


def test_overfit_batches_trains_on_the_same_first_batches_every_epoch_and_resumes(
    tmp_path: Path,
) -> None:
    every, options = 2, {"overfit_batches": 2, "limit_train_batches": 1.0}
    reference = _fit(tmp_path / "reference", every, **options)
    labels = reference.datamodule.tensors["train"][1]
    first_two = [labels[:32], labels[32:64]]
    assert isinstance(reference.trainer.train_dataloader, ResumableLoader)
    assert len(reference.batches) == EPOCHS * 2
    for step, batch in reference.batches.items():
        assert torch.equal(batch, first_two[step % 2])
    # step 4 ends epoch 1: the resumed run must start epoch 2 whole, not skip into it
    resumed, saved_step = _crash_then_resume(tmp_path / "resumed", every, 5, **options)
    assert saved_step == 4
    assert resumed.trainer.global_step == reference.trainer.global_step
    for step, batch in resumed.batches.items():
        assert torch.equal(batch, first_two[step % 2])
    expected = reference.task.model.state_dict()
    for name, value in resumed.task.model.state_dict().items():
        assert torch.equal(value, expected[name]), name


def _order(seed: int | None, epoch: int = 0) -> torch.Tensor:
    loader = tensor_loader((torch.arange(100),), 10, shuffle=True, seed=seed)
    loader.sampler.set_epoch(epoch)
    return torch.cat([indices for (indices,) in loader])


def test_the_batch_order_is_a_function_of_seed_and_epoch_only() -> None:
    assert sorted(_order(1).tolist()) == list(range(100))
    torch.manual_seed(5)
    rng = torch.get_rng_state()
    assert torch.equal(_order(1), _order(1))
    assert torch.equal(torch.get_rng_state(), rng), "loading drew from the global RNG"
    assert torch.equal(_order(None), _order(5)), "the default seed is torch's initial seed"
    assert not torch.equal(_order(1), _order(2))
    assert not torch.equal(_order(1, epoch=0), _order(1, epoch=1))
    assert not torch.equal(_order(1, epoch=1), _order(2, epoch=0))


def test_a_loader_state_continues_with_exactly_the_remaining_batches_of_its_epoch() -> None:
    data = (torch.arange(45),)
    loader = tensor_loader(data, 8, shuffle=True, seed=3)
    loader.sampler.set_epoch(2)
    whole_epoch = [indices for (indices,) in loader]
    batches = iter(loader)
    served = [next(batches)[0] for _ in range(2)]
    buffer = io.BytesIO()
    torch.save(loader.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state == {"epoch": 2, "batches": 2}

    resumed = tensor_loader(data, 8, shuffle=True, seed=3)
    assert isinstance(resumed, _Stateful)
    assert not isinstance(tensor_loader(data, 8, shuffle=False), _Stateful)
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)
    rest = [indices for (indices,) in resumed]
    assert len(whole_epoch) == 6 and len(rest) == 4
    assert all(torch.equal(a, b) for a, b in zip(served + rest, whole_epoch, strict=True))
    resumed.sampler.set_epoch(3)
    assert len(list(resumed)) == 6, "after the resumed epoch, epochs are whole again"

    later = tensor_loader(data, 8, shuffle=True, seed=3)
    later.load_state_dict(state)
    later.sampler.set_epoch(3)
    assert len(list(later)) == 6, "a position in epoch 2 does not cut epoch 3 short"


class SignalDuring(Callback):
    """Sends this process SIGTERM while the batch of `step` trains, as a scheduler would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


class Validations(Callback):
    """The epochs whose validation ran (not the sanity check)."""

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_validation_end(self, trainer: pl.Trainer, _: Any) -> None:
        if not trainer.sanity_checking:
            self.epochs.append(trainer.current_epoch)


@pytest.mark.parametrize(
    "step", [BATCHES + 3, 2 * BATCHES - 1], ids=["mid-epoch", "an epoch's last batch"]
)
def test_a_signal_stops_the_fit_and_the_resumed_fit_validates_every_epoch_once(
    tmp_path: Path, step: int
) -> None:
    last = tmp_path / "signal" / "last.ckpt"
    first, then = Validations(), Validations()
    with pytest.raises(Preempted):
        _fit(tmp_path, 0, callbacks=(LastCheckpoint(last, 0), SignalDuring(step), first))
    resumed = _fit(tmp_path, 0, ckpt_path=last, callbacks=(LastCheckpoint(last, 0), then))
    assert resumed.trainer.global_step == EPOCHS * BATCHES
    assert first.epochs + then.epochs == list(range(EPOCHS))
