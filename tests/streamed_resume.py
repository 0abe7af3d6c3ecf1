"""Exact resume of a streamed run killed mid-epoch, one harness for every modality: an
uninterrupted reference fit, a fit that dies after a step, and a fresh fit resumed from its
last checkpoint must train on the same (augmented) batches and end with the same weights.
Also the set-up of a streamed data module that the image, text and series tests share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from archlab.checkpointing.rng_state import RNGStateCallback
from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.data import build_datamodule
from archlab.data.batches import RestoreLoaderPosition
from archlab.models import build_classifier
from archlab.tasks.classify import ClassificationTask


def streamed_datamodule(path: Path, cache: Path, *overrides: str):
    """The data module of `overrides` on `path`, cached in `cache`, one loader worker, set up
    for fitting."""
    cfg = validate(
        compose_config(
            "train",
            (
                *overrides,
                f"data.path={path}",
                f"data.cache_dir={cache}",
                "data.num_workers=1",
            ),
        )
    )
    dm = build_datamodule(cfg.data, seed=cfg.seed)
    dm.setup("fit")
    return dm


class Crash(Exception):
    """Stands for a kill: the process dies after the step, before any further save."""


class CrashAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *_) -> None:
        if trainer.global_step == self.step:
            raise Crash


class Seen(Callback):
    """The inputs of each training step after augmentation, and the validation inputs."""

    def __init__(self) -> None:
        self.train: dict[int, torch.Tensor] = {}
        self.val: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, _, batch, __) -> None:
        self.train[trainer.global_step] = batch[0].clone()

    def on_validation_batch_start(self, trainer, _, batch, *__) -> None:
        self.val.append(batch[0].clone())


def fit_streamed(
    overrides: Sequence[str],
    tmp: Path,
    every: int,
    ckpt: Path | None = None,
    crash: int | None = None,
):
    """Two epochs of a streamed classifier (deterministic, checkpoints every `every` steps),
    dying after step `crash` or resumed from `ckpt`: (task, seen inputs, data module)."""
    cfg = validate(
        compose_config(
            "train",
            (
                f"data.cache_dir={tmp / 'cache'}",
                "data.in_memory=false",
                "data.num_workers=1",
                *overrides,
            ),
        )
    )
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = build_datamodule(cfg.data, seed=cfg.seed)
    dm.setup("fit")
    model = build_classifier(cfg.model, dm.spec, dm.num_classes)
    task = ClassificationTask(model, dm.num_classes, cfg.task, hparams=OmegaConf.to_container(cfg))
    seen = Seen()
    last = ModelCheckpoint(tmp / "ckpt", every_n_train_steps=every, save_last=True, save_top_k=0)
    callbacks = [last, seen, RestoreLoaderPosition(), RNGStateCallback()]
    callbacks += [CrashAt(crash)] if crash else []
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, deterministic=True, logger=False, max_epochs=2,
        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
    )  # fmt: skip
    trainer.fit(task, datamodule=dm, ckpt_path=ckpt, weights_only=True)
    return task, seen, dm


def assert_resumes_exactly(overrides: Sequence[str], tmp: Path, every: int, crash: int):
    """A run killed after step `crash` (between two saves) resumes from its last save on
    exactly the reference's batches, to the reference's weights. Returns the reference's
    seen inputs and data module for modality-specific checks."""
    assert crash % every, "crash between two saves"
    reference, seen, dm = fit_streamed(overrides, tmp / "ref", every)
    with pytest.raises(Crash):
        fit_streamed(overrides, tmp / "run", every, crash=crash)
    resumed, again, _ = fit_streamed(overrides, tmp / "run", every, tmp / "run/ckpt/last.ckpt")
    assert sorted(again.train) == list(range(crash // every * every, len(seen.train)))
    for step, inputs in again.train.items():
        assert torch.equal(inputs, seen.train[step]), step  # same batch, same augmentation
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, reference.model.state_dict()[name]), name
    return seen, dm
