"""Turns the validated `trainer`, `logger` and `callbacks` config into a Lightning Trainer."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    TQDMProgressBar,
)
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger

from archlab.checkpoint_io import AtomicCheckpointIO

CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"


def build_logger(cfg: DictConfig, run_dir: Path) -> Logger | bool:
    if cfg.logger.name == "tensorboard":
        return TensorBoardLogger(run_dir, name=TENSORBOARD_DIR, version="", default_hp_metric=False)
    if cfg.logger.name == "csv":
        return CSVLogger(run_dir, name="csv", version="")
    return False


def build_callbacks(cfg: DictConfig, run_dir: Path, has_logger: bool) -> list[Callback]:
    ckpt = cfg.callbacks.checkpoint
    callbacks: list[Callback] = []
    if not cfg.trainer.fast_dev_run:  # a smoke test leaves no checkpoint to mistake for a model
        callbacks.append(
            ModelCheckpoint(
                dirpath=run_dir / CHECKPOINT_DIR,
                filename="best" if ckpt.save_top_k == 1 else "epoch{epoch:03d}-step{step:06d}",
                auto_insert_metric_name=False,
                monitor=ckpt.monitor,
                mode=ckpt.mode,
                save_last=ckpt.save_last,
                save_top_k=ckpt.save_top_k,
            )
        )
    stop = cfg.callbacks.early_stopping
    if stop.enabled:
        callbacks.append(
            EarlyStopping(
                stop.monitor, min_delta=stop.min_delta, patience=stop.patience, mode=stop.mode
            )
        )
    if cfg.callbacks.lr_monitor and has_logger:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if cfg.trainer.enable_progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=cfg.callbacks.progress_refresh_rate))
    return callbacks


def build_trainer(cfg: DictConfig, run_dir: Path) -> pl.Trainer:
    logger = build_logger(cfg, run_dir)
    return pl.Trainer(
        **OmegaConf.to_container(cfg.trainer),
        logger=logger,
        callbacks=build_callbacks(cfg, run_dir, has_logger=bool(logger)),
        enable_checkpointing=not cfg.trainer.fast_dev_run,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=run_dir,
    )
