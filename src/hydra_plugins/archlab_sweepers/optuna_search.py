"""archlab's Optuna sweeper: each trial is one job of the sweep; the study is stored in the
sweep directory (optuna.db), so re-running an interrupted search's command continues it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from archlab.config.search_space import parse_space
from archlab.errors import ArchlabError
from hydra_plugins.archlab_sweepers.grid import failed_jobs, pin_sweep_dir


class OptunaSweeper(Sweeper):
    def __init__(self, n_trials: int, n_jobs: int, sampler: str, seed: int, pruner: str,
                 pruner_warmup_epochs: int, pruner_startup_trials: int, study_name: str,
                 params: DictConfig | None) -> None:  # fmt: skip
        self.settings = {
            "name": study_name,
            "sampler": sampler,
            "seed": seed,
            "pruner": pruner,
            "warmup_epochs": pruner_warmup_epochs,
            "startup_trials": pruner_startup_trials,
        }
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.params = OmegaConf.to_container(params) if params else {}

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:  # fmt: skip
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        # Hydra imports every plugin for every command: Optuna and Lightning wait for a sweep.
        import optuna

        from archlab.sweeps import study as search

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        try:
            dimensions, fixed = parse_space(self.params, arguments)
        except ArchlabError as error:
            print(f"archlab-train: error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        mode = OmegaConf.select(self.config, "callbacks.checkpoint.mode", default="max")
        study = search.open_study(
            sweep_dir, direction="maximize" if mode == "max" else "minimize", **self.settings
        )
        uncached = optuna.storages.RDBStorage(search.storage_url(sweep_dir))
        if requeued := search.requeue_interrupted(study):
            print(f"archlab-train: continuing the search; {requeued} interrupted trial(s) rerun")
        results: list[JobReturn] = []
        while (done := search.finished_trials(study)) < self.n_trials:
            trials = [study.ask() for _ in range(min(self.n_jobs, self.n_trials - done))]
            batch = [[*fixed, *(f"{d.key}={d.suggest(t)}" for d in dimensions)] for t in trials]
            # Job numbers are trial numbers: a job finds its trial by it (see search.py).
            returns = self.launcher.launch(
                pin_sweep_dir(batch, sweep_dir), initial_job_idx=trials[0].number
            )
            for trial, job in zip(trials, returns, strict=True):
                ok = job.status is JobStatus.COMPLETED
                search.tell_result(uncached, study, trial, ok, job.return_value if ok else None)
            results += returns
        print(search.describe_best(study))
        from archlab.records.report import finish_sweep  # not at start-up: see grid.py

        finish_sweep(sweep_dir, failed_jobs(results), len(results))
        return [results]
