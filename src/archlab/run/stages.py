"""Stages: `stages: [pretrain, finetune]` runs a self-supervised pretraining, then a finetuning
that starts from its best checkpoint, as two full runs in `<run dir>/pretrain` and
`<run dir>/finetune`. Each sub-run resumes or is skipped like any run (see
`archlab.checkpointing.resume`), so re-running the command after the pretrain stage finished
goes straight to finetuning.

In a multirun, the jobs share one pretrain run per pretrain-relevant config (model, data,
pretrain objective and trainer, seed), kept in `<sweep dir>/.pretrain/<key>` and guarded by
a file lock: a sweep over finetune settings pretrains once, even with parallel jobs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from archlab.checkpointing.files import find_checkpoint
from archlab.config.job import JobContext
from archlab.config.pipeline import SELF_SUPERVISED
from archlab.config.run_names import COSMETIC_KEYS
from archlab.config.schema import FinetuneConfig
from archlab.config.validate import validate
from archlab.records.run_record import METRICS_FILE, write_json_atomic
from archlab.run.job import run_job

SHARED_PRETRAIN_DIR = ".pretrain"


def stage_config(cfg: DictConfig, stage: str | None, init_from: Path | None = None) -> DictConfig:
    """The plain one-stage config a stage runs with (no `stages`, no `stage`).

    pretrain: `task` is `pretrain.task`, `pretrain.trainer` applies over `trainer`, `data` is
    `pretrain.data` when set (validation typed it in full), every training input is used
    (`data.label_fraction=1`). finetune: `task` as given, starting
    from `init_from` when given. Self-supervised runs keep the checkpoint of lowest val/loss,
    translation runs the one of highest val/exact_match.
    """
    plain: dict[str, Any] = OmegaConf.to_container(cfg)
    plain["stages"], plain["stage"] = [], None
    if stage == "pretrain":
        plain["task"] = plain["pretrain"]["task"]
        own = {k: v for k, v in plain["pretrain"]["trainer"].items() if v is not None}
        plain["trainer"] = {**plain["trainer"], **own}
        plain["data"] = plain["pretrain"].get("data") or plain["data"]
        plain["data"]["label_fraction"] = 1.0
        plain["finetune"] = asdict(FinetuneConfig())
    plain["pretrain"] = {"task": None, "trainer": {}, "data": None}
    if init_from is not None:
        plain["finetune"]["init_from"] = str(init_from)
    if plain["task"]["name"] in SELF_SUPERVISED:
        plain["callbacks"]["checkpoint"] |= {"monitor": "val/loss", "mode": "min"}
    if plain["task"]["name"] == "translate":
        plain["callbacks"]["checkpoint"] |= {"monitor": "val/exact_match", "mode": "max"}
    return validate(OmegaConf.create(plain))


def pretrain_key(cfg: DictConfig) -> str:
    """A digest of everything that shapes a pretrain stage's result."""
    plain = OmegaConf.to_container(cfg)
    for key in COSMETIC_KEYS:
        *parents, leaf = key.split(".")
        node = plain
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    return hashlib.sha1(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:12]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (created if needed); released when the process dies.

    Only the launching process locks: the other ranks of a distributed fit (started while the
    launcher holds the lock) must join it, not wait for it.
    """
    if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0":
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pretrain_dir(cfg: DictConfig, job: JobContext) -> Path:
    """`<run dir>/pretrain`; in a multirun, the sweep's shared run for this config."""
    if job.sweep_dir is not None:
        return job.sweep_dir / SHARED_PRETRAIN_DIR / pretrain_key(cfg)
    return job.run_dir / "pretrain"


def _write_summary(run_dir: Path, finetune_dir: Path, pretrain_dir: Path | None) -> None:
    """The finetuned model's metrics at the top of the run directory, so that sweep reports
    and `archlab-eval <run dir>` find them."""
    record = json.loads((finetune_dir / METRICS_FILE).read_text())
    record["best_checkpoint"] = str(find_checkpoint(finetune_dir).relative_to(run_dir))
    record["pretrain_run"] = str(pretrain_dir) if pretrain_dir else None
    write_json_atomic(run_dir / METRICS_FILE, record)


def run_stages(cfg: DictConfig, job: JobContext) -> tuple[dict[str, float], str]:
    """Run `cfg`: one run, one stage alone (`stage=`), or the pipeline of `stages`. Returns the
    last stage's final metrics and the name of the one its checkpoint was chosen by."""
    run_dir = job.run_dir
    if cfg.stage or not cfg.stages:
        single = stage_config(cfg, cfg.stage)
        return run_job(single, run_dir, job), single.callbacks.checkpoint.monitor
    pretrain_dir = None
    if "pretrain" in cfg.stages:
        pretrain_cfg = stage_config(cfg, "pretrain")
        pretrain_dir = _pretrain_dir(pretrain_cfg, job)
        with _locked(pretrain_dir.with_name(pretrain_dir.name + ".lock")):
            metrics = run_job(pretrain_cfg, pretrain_dir, job)
        if "finetune" not in cfg.stages:
            return metrics, pretrain_cfg.callbacks.checkpoint.monitor
    finetune_cfg = stage_config(cfg, "finetune", pretrain_dir)
    finetune_dir = run_dir / "finetune"
    metrics = run_job(finetune_cfg, finetune_dir, job)
    _write_summary(run_dir, finetune_dir, pretrain_dir)
    return metrics, finetune_cfg.callbacks.checkpoint.monitor
