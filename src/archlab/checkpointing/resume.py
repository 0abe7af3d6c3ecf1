"""Re-running a command continues its run: what did an earlier attempt leave in the run dir?

The run directory is a function of the command's overrides (see `archlab.config.run_names`), so the
same command finds the same directory. A finished run (metrics.json present) is not trained again;
an interrupted one resumes from `checkpoints/last.ckpt`, provided the config that shapes the
results (model, data, task, seed) is the one the checkpoint was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from archlab.checkpointing.files import CHECKPOINT_DIR, load_checkpoint
from archlab.config.validate import validate
from archlab.errors import ArchlabError, ConfigError
from archlab.records.run_record import METRICS_FILE

LAST_CHECKPOINT = "last.ckpt"
# What must match for a checkpoint to continue a run; trainer settings may change (more epochs).
_RESULT_SECTIONS = ("model", "data", "task", "seed")
# Keys inside those sections that change how data is read, not the results.
_NEUTRAL_KEYS = frozenset({"data.num_workers", "data.cache_dir"})


@dataclass(frozen=True)
class PriorRun:
    """What an earlier attempt left: finished, or a checkpoint to continue from, or nothing."""

    finished: bool
    checkpoint: Path | None
    global_step: int = 0


def _first_difference(old: Any, new: Any, key: str) -> str | None:
    if key in _NEUTRAL_KEYS:
        return None
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(old.keys() | new.keys()):
            found = _first_difference(old.get(k), new.get(k), f"{key}.{k}" if key else k)
            if found:
                return found
        return None
    return None if old == new else f"{key}: {old!r} -> {new!r}"


def _with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config with the keys added to archlab since it was written, at their defaults:
    a run interrupted before an upgrade still resumes."""
    try:
        return OmegaConf.to_container(validate(OmegaConf.create(saved)))
    except ArchlabError:
        return saved


def _check_same_config(checkpoint_path: Path, config: dict[str, Any], run_dir: Path) -> int:
    """The checkpoint's global step, after checking it was trained with this config."""
    checkpoint = load_checkpoint(checkpoint_path)
    saved = _with_defaults(checkpoint["hyper_parameters"])
    difference = _first_difference(
        {k: saved.get(k) for k in _RESULT_SECTIONS},
        {k: config.get(k) for k in _RESULT_SECTIONS},
        "",
    )
    if difference:
        raise ConfigError(
            f"{run_dir} holds a run with another config ({difference}): delete that "
            "directory to start over, or set hydra.run.dir to keep both."
        )
    return int(checkpoint["global_step"])


def remove_partial_saves(run_dir: Path) -> None:
    """Delete the temporary files of checkpoint saves that a crash cut short (`.<name>.*.tmp`,
    see `archlab.atomic`): nothing reads them, and a large model would leave one per
    preemption. Called by the process that writes checkpoints, before it writes any."""
    for path in (run_dir / CHECKPOINT_DIR).glob(".*.ckpt.*.tmp"):
        path.unlink(missing_ok=True)


def inspect_run_dir(run_dir: Path, config: dict[str, Any]) -> PriorRun:
    """Classify `run_dir` for a run of `config` (plain containers)."""
    last = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    step = _check_same_config(last, config, run_dir) if last.is_file() else 0
    if (run_dir / METRICS_FILE).is_file():
        return PriorRun(finished=True, checkpoint=None)
    return PriorRun(finished=False, checkpoint=last if last.is_file() else None, global_step=step)
