"""MLflow and Weights & Biases beside TensorBoard: whether the trackers a config names can be
used (package installed, server answering) before any training, what a run is called there,
what it sends them as params, and where its tracker run ids are kept.

Light (no Lightning, mlflow or wandb): `archlab-train` checks a command with it before Hydra
starts. The loggers themselves: `archlab.records.tracker_runs`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf

from archlab.config.job import JobContext
from archlab.config.validate import validate
from archlab.errors import ConfigError

TRACKERS = ("mlflow", "wandb")
TRACKERS_FILE = "trackers.json"  # the tracker run ids of this run directory
REACHABLE_TIMEOUT_S = 3.0  # MLflow's own client retries for minutes before it gives up
MLFLOW_DB = "mlflow.db"  # the local store under paths.root when no tracking URI is set


def mlflow_uri(cfg: DictConfig) -> str:
    """`logger.mlflow.tracking_uri`, else $MLFLOW_TRACKING_URI, else a SQLite store in
    `<paths.root>/mlflow.db` (MLflow 3 refuses plain-file stores)."""
    uri = cfg.logger.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or local_mlflow_uri(cfg)


def local_mlflow_uri(cfg: DictConfig) -> str:
    return f"sqlite:///{(Path(cfg.paths.root) / MLFLOW_DB).resolve()}"


def _unreachable(uri: str) -> str | None:
    """Why an HTTP tracking server cannot be reached (None: it answered, or it is no server)."""
    if urlparse(uri).scheme not in ("http", "https"):
        return None
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=REACHABLE_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return None  # an answer, if not the expected one: the server is there
    except (urllib.error.URLError, OSError) as ex:
        return str(getattr(ex, "reason", ex))
    return None


def check_trackers(cfg: DictConfig, warn: bool = True) -> DictConfig:
    """`cfg` when its trackers can be used; raises ConfigError naming the fix when not. An
    unreachable MLflow server with `logger.mlflow.required=false` is a warning (if `warn`), and
    the config returned logs without it (to TensorBoard, if no other logger is left)."""
    for name in TRACKERS:
        if cfg.logger[name] is not None and importlib.util.find_spec(name) is None:
            raise ConfigError(
                f"logger={name} needs the {name} package, which is not installed: "
                f"pip install 'archlab[{name}]'"
            )
    if cfg.logger.mlflow is None:
        return cfg
    uri = mlflow_uri(cfg)
    problem = _unreachable(uri)
    if problem is None:
        return cfg
    if cfg.logger.mlflow.required:
        raise ConfigError(
            f"The MLflow tracking server {uri} does not answer ({problem}): start it, correct "
            "logger.mlflow.tracking_uri (or MLFLOW_TRACKING_URI), or set "
            "logger.mlflow.required=false to train without it."
        )
    plain = OmegaConf.to_container(cfg)
    plain["logger"]["mlflow"] = None
    if not any(plain["logger"].values()):
        plain["logger"]["tensorboard"] = {}
    if warn:
        kept = ", ".join(k for k, v in plain["logger"].items() if v is not None)
        print(
            f"archlab-train: warning: the MLflow tracking server {uri} does not answer "
            f"({problem}); logger.mlflow.required=false: this run logs to {kept} only.",
            file=sys.stderr,
        )
    return validate(OmegaConf.create(plain))


def tracker_names(cfg: DictConfig, run_dir: Path, job: JobContext, chosen: str | None) -> tuple:
    """(experiment, run name): `chosen`, else the run's `name` or, for a sweep's jobs, the
    sweep directory's name (one experiment per sweep); the run is named like its directory,
    after its overrides (a stage's run: `<job>/<stage>`)."""
    job_dir = Path(job.hydra.runtime.output_dir) if job.hydra is not None else job.run_dir
    experiment = chosen or (job.sweep_dir.name if job.sweep_dir is not None else cfg.name)
    try:
        inside = run_dir.resolve().relative_to(job_dir.resolve())
    except ValueError:  # a sweep's shared pretrain run: <sweep dir>/.pretrain/<key>
        return experiment, f"{run_dir.parent.name.lstrip('.')}/{run_dir.name}"
    name = job_dir.name
    return experiment, name if inside == Path() else f"{name}/{inside.as_posix()}"


def tracker_params(cfg: DictConfig, overrides: Iterable[str]) -> dict[str, Any]:
    """The config flattened to `section.key` entries, the keys the command line sets (those a
    sweep varies among them) first."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg), "")
    named = [o.split("=", 1)[0].lstrip("+~") for o in overrides]

    def set_by_command(key: str) -> bool:
        return any(key == n or key.startswith(f"{n}.") for n in named)

    first = {k: v for k, v in flat.items() if set_by_command(k)}
    return first | {k: v for k, v in flat.items() if k not in first}


def saved_ids(run_dir: Path) -> dict[str, Any]:
    path = run_dir / TRACKERS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
