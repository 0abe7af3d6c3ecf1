"""What one Hydra job does with a one-stage config: plan, or check the machine, then train
here or in the ranks it launches."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from archlab.config.job import JobContext
from archlab.distributed.launch import launch_ranks, needs_launch
from archlab.distributed.strategies import check_environment
from archlab.records.run_record import METRICS_FILE
from archlab.records.trackers import check_trackers
from archlab.run.fit import fit
from archlab.run.plan import print_plan


def run_job(cfg: DictConfig, run_dir: Path, job: JobContext) -> dict[str, float]:
    """Train `cfg` in `run_dir`; returns its final metrics."""
    if cfg.plan:  # a sweep over plan=...: the command line's own plan=true never gets here
        print_plan(cfg)
        return {}
    check_environment(cfg.trainer)
    # A finished run is reported from its record by `fit`, without starting ranks.
    finished = (run_dir / METRICS_FILE).is_file()
    if not finished:
        # Before training: a tracking server that does not answer is refused, or left out.
        cfg = check_trackers(cfg)
    if needs_launch(cfg.trainer) and not finished:
        return launch_ranks(cfg, run_dir, job)
    return fit(cfg, run_dir, job)
