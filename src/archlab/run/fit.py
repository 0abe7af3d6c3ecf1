"""One run in this process: fit on train (continuing an interrupted attempt), pick the best
checkpoint on val, report val and test metrics, write the run record."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from archlab.checkpointing.resume import inspect_run_dir, remove_partial_saves
from archlab.config.budget import apply_budget, resolve_budget
from archlab.config.job import JobContext
from archlab.distributed.strategies import processes_per_node
from archlab.records.cost import TrainClock, run_cost, trainable_parameters
from archlab.records.dashboards import log_hparams
from archlab.records.manifest import collect_manifest, write_manifest
from archlab.records.run_record import (
    BAD_INPUTS_FILE,
    METRICS_FILE,
    save_run_config,
    scalar_metrics,
    write_json_atomic,
)
from archlab.records.tracker_runs import finish_trackers, start_trackers
from archlab.records.trackers import tracker_params
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
    sizes = {split: len(data) for split, data in datamodule.datasets.items()}
    world = processes_per_node(cfg.trainer) * cfg.trainer.num_nodes
    budget = resolve_budget(cfg, sizes["train"], sizes["val"], world)
    user_cfg, cfg = cfg, apply_budget(cfg, budget)
    datamodule.use_config(cfg.data)
    task.task_cfg = cfg.task
    if cfg.compile:
        task.model.compile()  # in place: checkpoints keep the plain parameter names
    params = trainable_parameters(task.model)  # before a sharding strategy splits the model
    resume_step = prior.global_step if prior.checkpoint else None
    trainer = build_trainer(cfg, run_dir, job, resume_step)
    if trainer.is_global_zero:
        # Trackers first: one that cannot open its run stops the run before it writes anything.
        start_trackers(trainer.loggers, cfg, run_dir, tracker_params(cfg, job.overrides))
        announce(user_cfg, sizes, len(datamodule.classes), task.model, budget, run_dir)
        remove_partial_saves(run_dir)
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
        clock = next(c for c in trainer.callbacks if isinstance(c, TrainClock))
        # The best checkpoint's weights are in the model since validate/test loaded them.
        eval_inputs = next(iter(datamodule.val_dataloader()))[0]
        cost = run_cost(
            trainer, task.model, eval_inputs, clock, params, cfg.task.name != "translate"
        )
        record = {
            **metrics,
            "best_checkpoint": str(Path(best).relative_to(run_dir)) if best else None,
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "budget": budget.record(),
            "classes": datamodule.classes,
            "bad_inputs": len(datamodule.bad_inputs),  # skipped with data.on_bad=skip
            **task.final_record(),
            "cost": cost,
        }
        if datamodule.bad_inputs:
            write_json_atomic(run_dir / BAD_INPUTS_FILE, datamodule.bad_inputs)
        write_json_atomic(run_dir / METRICS_FILE, record)
        log_hparams(trainer.loggers, hparams, metrics, cost, job.overrides)
        best_path = Path(best) if best else None
        finish_trackers(trainer.loggers, cfg, run_dir, metrics, trainer.global_step, best_path)
        print(metrics_table(metrics, "best" if budget.choose_on_val else "last"))
    return metrics
