"""What a job of a multirun does differently from a single run: it shares the machine's cores
with the jobs running beside it, and a failure is recorded in its directory instead of ending
the sweep (the sweeper reports every failed job once all jobs ran)."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from archlab.atomic import write_atomic
from archlab.errors import ArchlabError
from archlab.threads import parallel_workers

ERROR_FILE = "error.txt"


def in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def concurrent_jobs() -> int:
    """Jobs the sweep's launcher runs at once on this machine (joblib's `n_jobs`; else 1)."""
    from hydra.core.hydra_config import HydraConfig

    launcher = HydraConfig.get().launcher
    return parallel_workers(launcher.get("n_jobs")) if "n_jobs" in launcher else 1


def record_failure(run_dir: Path, error: BaseException) -> None:
    """Leave the error in the job's directory (the report's source) and print it once."""
    message = str(error) if isinstance(error, ArchlabError) else f"{type(error).__name__}: {error}"
    first_line = message.splitlines()[0] if message else type(error).__name__
    print(f"archlab-train: job {run_dir} failed: {first_line}", file=sys.stderr)
    details = "" if isinstance(error, ArchlabError) else "".join(traceback.format_exception(error))
    text = f"{first_line}\n{details}"
    write_atomic(run_dir / ERROR_FILE, lambda f: f.write(text))
    overrides = run_dir / ".hydra" / "overrides.yaml"
    if not overrides.parent.exists():  # refused before archlab wrote it: name the job anyway
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        yaml = OmegaConf.to_yaml(HydraConfig.get().overrides.task)
        write_atomic(overrides, lambda f: f.write(yaml))
