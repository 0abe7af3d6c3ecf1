"""Turns the validated `trainer`, `logger` and `callbacks` config into a Lightning Trainer."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
)
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger

from archlab.checkpointing.atomic_io import AtomicCheckpointIO
from archlab.checkpointing.files import CHECKPOINT_DIR
from archlab.checkpointing.preemption import LastCheckpoint
from archlab.checkpointing.resume import LAST_CHECKPOINT
from archlab.checkpointing.rng_state import RNGStateCallback
from archlab.config.job import JobContext
from archlab.config.schema import SHARDED
from archlab.data.batches import RestoreLoaderPosition
from archlab.distributed.strategies import trainer_arguments
from archlab.records.attention import AttentionMaps
from archlab.records.attributions import Attributions
from archlab.records.cost import TrainClock
from archlab.records.dashboards import PredictionDashboards
from archlab.records.tracker_runs import mlflow_logger, wandb_logger
from archlab.run.console import ConsoleProgress
from archlab.run.lm_samples import LMSamples
from archlab.sweeps.study import trial_pruning

TENSORBOARD_DIR = "tensorboard"


def build_loggers(
    cfg: DictConfig, run_dir: Path, job: JobContext, resume_step: int | None
) -> list[Logger]:
    """The loggers `logger` selects, TensorBoard first (`trainer.logger` is the first one).

    `resume_step`: events an interrupted attempt wrote after its checkpoint are discarded,
    so the resumed curves have no duplicate points."""
    loggers: list[Logger] = []
    if cfg.logger.tensorboard is not None:
        purge = {"purge_step": resume_step + 1} if resume_step is not None else {}
        loggers.append(
            TensorBoardLogger(
                run_dir, name=TENSORBOARD_DIR, version="", default_hp_metric=False, **purge
            )
        )
    if cfg.logger.csv is not None:
        loggers.append(CSVLogger(run_dir, name="csv", version=""))
    if cfg.logger.mlflow is not None:
        loggers.append(mlflow_logger(cfg, run_dir, job))
    if cfg.logger.wandb is not None:
        loggers.append(wandb_logger(cfg, run_dir, job))
    return loggers


def _checkpoint_callbacks(cfg: DictConfig, run_dir: Path) -> list[Callback]:
    """best.ckpt by the monitored metric (Lightning's `trainer.checkpoint_callback`), and
    last.ckpt at every epoch end, every n steps and on SIGTERM/SIGINT. best.ckpt is replaced,
    never versioned (best-v1.ckpt): a run resumed after a crash that came between writing it
    and the next last.ckpt does not know of it, and everything downstream reads best.ckpt."""
    ckpt = cfg.callbacks.checkpoint
    folder = run_dir / CHECKPOINT_DIR
    return [
        ModelCheckpoint(
            dirpath=folder,
            filename="best" if ckpt.save_top_k == 1 else "epoch{epoch:03d}-step{step:06d}",
            auto_insert_metric_name=False,
            monitor=ckpt.monitor,
            mode=ckpt.mode,
            save_top_k=ckpt.save_top_k,
            enable_version_counter=False,
        ),
        LastCheckpoint(folder / LAST_CHECKPOINT, ckpt.every_n_train_steps),
    ]


def build_callbacks(
    cfg: DictConfig, run_dir: Path, job: JobContext, has_logger: bool
) -> list[Callback]:
    # A smoke test (fast_dev_run) leaves no checkpoint to mistake for a model.
    callbacks = [] if cfg.trainer.fast_dev_run else _checkpoint_callbacks(cfg, run_dir)
    # Exact resumption: the train loader's position and the RNG states of the checkpoint.
    callbacks += [RestoreLoaderPosition(), RNGStateCallback(), TrainClock()]
    stop = cfg.callbacks.early_stopping
    if stop.enabled:
        callbacks.append(
            EarlyStopping(
                stop.monitor, min_delta=stop.min_delta, patience=stop.patience, mode=stop.mode
            )
        )
    # An Optuna trial's job reports each epoch's metric and stops early when pruned.
    monitor = cfg.callbacks.checkpoint.monitor  # None: val too small to judge (config.budget)
    pruning = trial_pruning(monitor, job) if monitor else None
    if pruning:
        callbacks.append(pruning)
    if has_logger and cfg.task.name == "classify":
        callbacks += [PredictionDashboards(), Attributions()]
    if has_logger and (cfg.task.name == "translate" or cfg.model.name == "transformer"):
        callbacks.append(AttentionMaps())
    # To TensorBoard's text tab; not with a sharded strategy (one rank cannot run the model).
    samples = cfg.callbacks.lm_samples
    language_model = cfg.task.name == "lm" and cfg.trainer.strategy not in SHARDED
    if language_model and cfg.logger.tensorboard is not None and samples.prompts:
        callbacks.append(LMSamples(samples, cfg.seed))
    if cfg.callbacks.lr_monitor and has_logger:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if cfg.trainer.enable_progress_bar:
        callbacks.append(ConsoleProgress(cfg.callbacks.progress_refresh_rate))
    return callbacks


def build_trainer(
    cfg: DictConfig, run_dir: Path, job: JobContext, resume_step: int | None = None
) -> pl.Trainer:
    """`resume_step`: the global step of the checkpoint this fit continues from, if any."""
    loggers = build_loggers(cfg, run_dir, job, resume_step)
    return pl.Trainer(
        **trainer_arguments(cfg.trainer),
        logger=loggers or False,
        callbacks=build_callbacks(cfg, run_dir, job, has_logger=bool(loggers)),
        enable_checkpointing=not cfg.trainer.fast_dev_run,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=run_dir,
    )
