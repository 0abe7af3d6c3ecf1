"""`archlab-train`: compose model x data x task x trainer, check it, then run it (one run, its
stages, or one job of a sweep) under Hydra."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from archlab.config.job import JobContext
from archlab.config.paths import config_dir
from archlab.config.preflight import preflight
from archlab.config.run_names import register_resolvers as register_name_resolvers
from archlab.distributed.slurm import register_resolvers as register_slurm_resolvers
from archlab.errors import ArchlabError, exit_with
from archlab.records.trackers import check_trackers


def _discard_unstarted(run_dir: Path) -> None:
    """Remove a run directory that holds only what Hydra wrote before the failure."""
    if run_dir.is_dir() and all(
        p.name == ".hydra" or p.suffix == ".log" for p in run_dir.iterdir()
    ):
        shutil.rmtree(run_dir, ignore_errors=True)


def _run(cfg: DictConfig) -> float | None:
    # torch and Lightning load here, once the command is known to be valid: a refused command
    # answers in 0.7 s instead of 5 s.
    from archlab.checkpointing.preemption import Preempted
    from archlab.config.validate import validate
    from archlab.run.stages import run_stages
    from archlab.sweeps.job import record_failure
    from archlab.sweeps.threads import parallel_workers, set_threads

    job = JobContext.from_hydra(HydraConfig.get())
    try:
        cfg = validate(cfg)
        workers = parallel_workers(job.launcher_jobs) if job.in_sweep else 1
        if cfg.num_threads or workers > 1:
            set_threads(cfg.num_threads, workers)
        metrics, monitor = run_stages(cfg, job)
    except Preempted as stop:
        print(f"archlab-train: {stop}", file=sys.stderr)
        raise SystemExit(stop.exit_status) from None
    except Exception as error:
        # In a sweep the job fails alone: Hydra records it and the other jobs go on.
        if job.in_sweep:
            record_failure(job, error)
            raise
        if not isinstance(error, ArchlabError):
            raise
        _discard_unstarted(job.run_dir)
        exit_with("archlab-train", error)
    return metrics.get(monitor)  # what a sweeper optimises


def main() -> None:
    register_name_resolvers()  # run and sweep directories (conf/train.yaml)
    register_slurm_resolvers()  # the SLURM job shape (conf/hydra/launcher/slurm.yaml)
    try:
        cfg = preflight(sys.argv[1:])
        if cfg is not None and cfg.plan:  # plan=true: before Hydra makes a run directory
            from archlab.run.plan import print_plan  # imports torch: only when planning

            return print_plan(cfg)
        if cfg is not None:  # a tracker that cannot be used refuses a sweep once, not per job
            check_trackers(cfg, warn=False)
    except ArchlabError as error:
        exit_with("archlab-train", error)
    hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")(_run)()


if __name__ == "__main__":
    main()
