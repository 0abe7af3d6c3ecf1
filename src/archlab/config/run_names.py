"""Directory names of runs and sweeps, made from the command's overrides: the same command
finds the same directory again (see `archlab.checkpointing.resume`). Light on purpose: Hydra
resolves these before any run starts, and a refused command should not wait for torch to import."""

from __future__ import annotations

import hashlib
import re

from omegaconf import OmegaConf

_MAX_NAME = 120
# Overrides that do not change results: they name neither a run directory nor a shared
# pretrain run (Hydra reads them through `${archlab_cosmetic_keys:}` in conf/train.yaml).
COSMETIC_KEYS = (
    "name",
    "paths.root",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "callbacks.progress_refresh_rate",
    "data.num_workers",
    "data.cache_dir",
)


def run_id(override_dirname: str) -> str:
    """A directory name for a command's overrides: readable, filesystem-safe, bounded."""
    if not override_dirname:
        return "default"
    name = re.sub(r"[^\w.,=+\-\[\]]", "_", override_dirname)
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha1(override_dirname.encode()).hexdigest()[:10]
    return f"{name[: _MAX_NAME - 11]}-{digest}"


def sweep_id(task_overrides: list[str], exclude_keys: list[str]) -> str:
    """A directory name for a multirun's overrides: the same sweep command finds its sweep."""
    kept = sorted(o for o in task_overrides if o.split("=", 1)[0].lstrip("+~") not in exclude_keys)
    return run_id(",".join(kept))


def register_resolvers() -> None:
    """The resolvers conf/train.yaml names directories with."""
    OmegaConf.register_new_resolver("archlab_run_id", run_id, replace=True)
    OmegaConf.register_new_resolver("archlab_sweep_id", sweep_id, replace=True)
    OmegaConf.register_new_resolver(
        "archlab_cosmetic_keys", lambda: list(COSMETIC_KEYS), replace=True
    )
