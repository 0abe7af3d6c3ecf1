"""The MLflow and W&B loggers of a run: built to continue the tracker run that the run
directory started (ids in `trackers.json`), opened with the config as params, closed with the
final metrics and the artifacts. mlflow and wandb themselves load only when a run names them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger, MLFlowLogger, WandbLogger

from archlab.config.job import JobContext
from archlab.errors import ConfigError
from archlab.records.run_record import METRICS_FILE, write_json_atomic
from archlab.records.trackers import (
    TRACKERS_FILE,
    local_mlflow_uri,
    mlflow_uri,
    saved_ids,
    tracker_names,
)


def mlflow_logger(cfg: DictConfig, run_dir: Path, job: JobContext) -> MLFlowLogger:
    """Lightning's MLFlowLogger, continuing the MLflow run this directory started, if any."""
    node = cfg.logger.mlflow
    uri = mlflow_uri(cfg)
    experiment, run_name = tracker_names(cfg, run_dir, job, node.experiment_name)
    saved = saved_ids(run_dir).get("mlflow", {})
    local = uri == local_mlflow_uri(cfg)
    from mlflow.exceptions import MlflowException  # only for a run that names MLflow

    try:
        return MLFlowLogger(
            experiment_name=experiment,
            run_name=run_name,
            tracking_uri=uri,
            run_id=saved.get("run_id") if saved.get("tracking_uri") == uri else None,
            # A local store keeps its artifacts beside it, not in the working directory.
            artifact_location=str(Path(cfg.paths.root).resolve() / "mlartifacts")
            if local
            else None,
        )
    except MlflowException as ex:  # a store MLflow refuses (a plain-file one, in MLflow 3)
        raise _refused(cfg, ex) from None


def wandb_logger(cfg: DictConfig, run_dir: Path, job: JobContext) -> WandbLogger:
    """Lightning's WandbLogger writing under `<run dir>/wandb`, with this directory's W&B run
    id (kept from its first attempt) so that a resumed run continues it."""
    import wandb  # only for a run that names W&B

    if wandb.run is not None:  # left open by a failed earlier job of this process (a sweep's)
        wandb.run.finish(exit_code=1)
    node = cfg.logger.wandb
    project, run_name = tracker_names(cfg, run_dir, job, node.project)
    run_id = saved_ids(run_dir).get("wandb", {}).get("id") or uuid.uuid4().hex[:8]
    group = job.sweep_dir.name if job.sweep_dir is not None else None
    return WandbLogger(
        name=run_name,
        save_dir=str(run_dir),
        id=run_id,
        project=project,
        entity=node.entity,
        group=group,
        mode=node.mode,
    )


def _refused(cfg: DictConfig, error: Exception) -> ConfigError:
    reason = str(error).strip().splitlines()[0]
    return ConfigError(
        f"MLflow cannot open a run in {mlflow_uri(cfg)}: {reason} Correct "
        "logger.mlflow.tracking_uri (or MLFLOW_TRACKING_URI)."
    )


def _open_run(logger: MLFlowLogger, cfg: DictConfig) -> str:
    """The MLflow run's id, once created (or found)."""
    from mlflow.exceptions import MlflowException  # loaded by the logger already

    try:
        return logger.run_id
    except MlflowException as ex:
        raise _refused(cfg, ex) from None


def start_trackers(
    loggers: Iterable[Logger], cfg: DictConfig, run_dir: Path, params: Mapping[str, Any]
) -> None:
    """Open the tracker runs (global rank zero only), keep their ids in the run directory,
    and send them the config."""
    ids = saved_ids(run_dir)
    for logger in loggers:
        if isinstance(logger, MLFlowLogger):
            ids["mlflow"] = {"tracking_uri": mlflow_uri(cfg), "run_id": _open_run(logger, cfg)}
            logger.log_hyperparams(dict(params))
        elif isinstance(logger, WandbLogger):
            ids["wandb"] = {"id": logger.experiment.id}
            logger.log_hyperparams(dict(params))
    if ids:
        write_json_atomic(run_dir / TRACKERS_FILE, ids)


def finish_trackers(
    loggers: Iterable[Logger],
    cfg: DictConfig,
    run_dir: Path,
    metrics: Mapping[str, float],
    step: int,
    best: Path | None,
) -> None:
    """The final val/test metrics under `final/` (no extra point on the curves), metrics.json
    and (with `log_model`) the best checkpoint as artifacts; then close the tracker runs."""
    final = {f"final/{k}": v for k, v in metrics.items()}
    for logger in loggers:
        if isinstance(logger, MLFlowLogger):
            logger.log_metrics(final, step)
            client, run_id = logger.experiment, logger.run_id
            client.log_artifact(run_id, str(run_dir / METRICS_FILE))
            if best is not None and cfg.logger.mlflow.log_model:
                client.log_artifact(run_id, str(best), "checkpoints")
            logger.finalize("success")
        elif isinstance(logger, WandbLogger):
            import wandb  # only here: a run that never names W&B never loads it

            run = logger.experiment
            run.summary.update(final)
            artifact = wandb.Artifact(f"run-{run.id}", type="model")
            artifact.add_file(str(run_dir / METRICS_FILE))
            if best is not None and cfg.logger.wandb.log_model:
                artifact.add_file(str(best), name=f"checkpoints/{best.name}")
            run.log_artifact(artifact)
            run.finish()
