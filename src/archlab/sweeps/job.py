"""A job of a multirun fails alone: its error is recorded in its directory instead of ending
the sweep (the sweeper reports every failed job once all jobs ran)."""

from __future__ import annotations

import sys
import traceback

from omegaconf import OmegaConf

from archlab.atomic import write_atomic
from archlab.config.job import JobContext
from archlab.errors import ArchlabError
from archlab.records.run_record import ERROR_FILE


def record_failure(job: JobContext, error: BaseException) -> None:
    """Leave the error in the job's directory (the report's source) and print it once."""
    run_dir = job.run_dir
    message = str(error) if isinstance(error, ArchlabError) else f"{type(error).__name__}: {error}"
    first_line = message.splitlines()[0] if message else type(error).__name__
    print(f"archlab-train: job {run_dir} failed: {first_line}", file=sys.stderr)
    details = "" if isinstance(error, ArchlabError) else "".join(traceback.format_exception(error))
    text = f"{first_line}\n{details}"
    write_atomic(run_dir / ERROR_FILE, lambda f: f.write(text))
    overrides = run_dir / ".hydra" / "overrides.yaml"
    if not overrides.parent.exists():  # refused before archlab wrote it: name the job anyway
        yaml = OmegaConf.to_yaml(list(job.overrides))
        write_atomic(overrides, lambda f: f.write(yaml))
