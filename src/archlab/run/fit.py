"""One run in this process: fit on train (continuing an interrupted attempt), pick the best
checkpoint on val, report val and test metrics, write the run record."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from archlab.checkpointing.resume import inspect_run_dir
from archlab.config.budget import apply_budget, resolve_budget
from archlab.config.job import JobContext
from archlab.distributed.strategies import processes_per_node
from archlab.records.dashboards import log_hparams
from archlab.records.manifest import collect_manifest, write_manifest
from archlab.records.run_record import (
    METRICS_FILE,
    save_run_config,
    scalar_metrics,
    write_json_atomic,
)
from archlab.run.console import announce, metrics_table, quiet_libraries
from archlab.run.trainer import build_trainer
from archlab.tasks.build import build_run


def fit(cfg: DictConfig, run_dir: Path, job: JobContext) -> dict[str, float]:
    """Train `cfg` in `run_dir` and return its final val/test metrics."""
    hparams = OmegaConf.to_container(cfg)
    prior = inspect_run_dir(run_dir, hparams)
    if prior.finished:
        print(
            f"archlab-train: {run_dir} already holds a finished run; its metrics are in "
            f"{METRICS_FILE}. Delete the directory to train again.",
            file=sys.stderr,
        )
        recorded = json.loads((run_dir / METRICS_FILE).read_text())
        return scalar_metrics(recorded)
    quiet_libraries()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, task = build_run(cfg, hparams)
    # Null budget knobs are sized from the splits; the checkpoints keep the user's config.
    sizes = {split: len(y) for split, (_, y) in datamodule.tensors.items()}
    world = processes_per_node(cfg.trainer) * cfg.trainer.num_nodes
    budget = resolve_budget(cfg, sizes["train"], sizes["val"], world)
    user_cfg, cfg = cfg, apply_budget(cfg, budget)
    datamodule.cfg, task.task_cfg = cfg.data, cfg.task
    if cfg.compile:
        task.model.compile()  # in place: checkpoints keep the plain parameter names
    resume_step = prior.global_step if prior.checkpoint else None
    trainer = build_trainer(cfg, run_dir, job, resume_step)
    if trainer.is_global_zero:
        announce(cfg, sizes, datamodule.num_classes, task.model, budget, run_dir)
        save_run_config(run_dir, user_cfg, job)
        write_manifest(run_dir, collect_manifest(cfg.seed, cfg.trainer.deterministic))
    trainer.fit(task, datamodule=datamodule, ckpt_path=prior.checkpoint, weights_only=True)

    callback = trainer.checkpoint_callback
    best = (callback.best_model_path if callback else "") or None
    trainer.validate(task, datamodule, ckpt_path=best, verbose=False, weights_only=True)
    results = dict(trainer.callback_metrics)
    if cfg.test_after_fit:
        trainer.test(task, datamodule, ckpt_path=best, verbose=False, weights_only=True)
        # Not test()'s return value: it holds only what went to a logger (none with logger=none).
        results |= dict(trainer.callback_metrics)
    metrics = scalar_metrics(results)
    if trainer.is_global_zero:
        record = {
            **metrics,
            "best_checkpoint": str(Path(best).relative_to(run_dir)) if best else None,
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "budget": budget.record(),
            "classes": datamodule.classes,
            **task.final_record(),
        }
        write_json_atomic(run_dir / METRICS_FILE, record)
        log_hparams(trainer.logger, hparams, metrics, job.overrides)
        print(metrics_table(metrics, "last" if not budget.choose_on_val else "best"))
    return metrics
