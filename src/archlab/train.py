"""`archlab-train`: compose model x data x task x trainer, fit, test, write the run record."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from archlab.errors import ArchlabError, exit_with
from archlab.paths import config_dir
from archlab.preflight import preflight


def train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Fit on train (continuing an interrupted attempt), pick the best checkpoint on val,
    report val and test metrics."""
    import pytorch_lightning as pl

    from archlab.lightning_trainer import build_trainer
    from archlab.manifest import collect_manifest, write_manifest
    from archlab.resume import inspect_run_dir
    from archlab.runrecord import (
        METRICS_FILE,
        log_hparams,
        save_run_config,
        scalar_metrics,
        write_json_atomic,
    )
    from archlab.tasks.build import build_run

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
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, task = build_run(cfg, hparams)
    if cfg.compile:
        task.model.compile()  # in place: checkpoints keep the plain parameter names
    resume_step = prior.global_step if prior.checkpoint else None
    trainer = build_trainer(cfg, run_dir, resume_step)
    if trainer.is_global_zero:
        save_run_config(run_dir, cfg)
        write_manifest(run_dir, collect_manifest(cfg.seed, cfg.trainer.deterministic))
    trainer.fit(task, datamodule=datamodule, ckpt_path=prior.checkpoint, weights_only=True)

    callback = trainer.checkpoint_callback
    best = (callback.best_model_path if callback else "") or None
    trainer.validate(task, datamodule, ckpt_path=best, verbose=False, weights_only=True)
    results = dict(trainer.callback_metrics)
    if cfg.test_after_fit:
        trainer.test(task, datamodule, ckpt_path=best, weights_only=True)
        # Not test()'s return value: it holds only what went to a logger (none with logger=none).
        results |= dict(trainer.callback_metrics)
    metrics = scalar_metrics(results)
    if trainer.is_global_zero:
        record = {
            **metrics,
            "best_checkpoint": str(Path(best).relative_to(run_dir)) if best else None,
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "classes": datamodule.classes,
            "confusion_matrix": task.final_confusion,
        }
        write_json_atomic(run_dir / METRICS_FILE, record)
        log_hparams(trainer.logger, hparams, metrics)
    return metrics


def _discard_unstarted(run_dir: Path) -> None:
    """Remove a run directory that holds only what Hydra wrote before the failure."""
    if run_dir.is_dir() and all(
        p.name == ".hydra" or p.suffix == ".log" for p in run_dir.iterdir()
    ):
        shutil.rmtree(run_dir, ignore_errors=True)


def _run(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from archlab.config.validate import validate
    from archlab.preemption import Preempted
    from archlab.stages import run_stages
    from archlab.sweep_job import concurrent_jobs, in_sweep, record_failure
    from archlab.threads import set_threads

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    sweep = in_sweep()
    try:
        cfg = validate(cfg)
        workers = concurrent_jobs() if sweep else 1
        if cfg.num_threads or workers > 1:
            set_threads(cfg.num_threads, workers)
        metrics, monitor = run_stages(cfg, run_dir)
    except Preempted as stop:
        print(f"archlab-train: {stop}", file=sys.stderr)
        raise SystemExit(stop.exit_status) from None
    except Exception as error:
        # In a sweep the job fails alone: Hydra records it and the other jobs go on.
        if sweep:
            record_failure(run_dir, error)
            raise
        if not isinstance(error, ArchlabError):
            raise
        _discard_unstarted(run_dir)
        exit_with("archlab-train", error)
    return metrics.get(monitor)  # what a sweeper optimises


def main() -> None:
    import hydra

    from archlab.run_names import run_id, sweep_id
    from archlab.slurm import register_resolvers

    OmegaConf.register_new_resolver("archlab_run_id", run_id, replace=True)
    OmegaConf.register_new_resolver("archlab_sweep_id", sweep_id, replace=True)
    register_resolvers()  # the SLURM job shape (conf/hydra/launcher/slurm.yaml)
    try:
        cfg = preflight(sys.argv[1:])
        if cfg is not None and cfg.plan:  # plan=true: before Hydra makes a run directory
            from archlab.plan import print_plan

            return print_plan(cfg)
    except ArchlabError as error:
        exit_with("archlab-train", error)
    hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")(_run)()


if __name__ == "__main__":
    main()
