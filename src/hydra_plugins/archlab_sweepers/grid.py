"""archlab's default sweeper: Hydra's grid (cartesian product of the swept values), where a
failing job does not stop the others, and the sweep reports every job when they all ran."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf


def failed_jobs(results: list[JobReturn]) -> list[str]:
    """The failed jobs' directory names (their errors are in each directory's error.txt)."""
    return [
        Path(r.hydra_cfg.hydra.runtime.output_dir).name if r.hydra_cfg else "?"
        for r in results
        if r.status is JobStatus.FAILED
    ]


def pin_sweep_dir(batch: list[list[str]], sweep_dir: Path) -> list[list[str]]:
    """Each job's config would re-resolve `hydra.sweep.dir` from its own overrides: give every
    job the sweep's directory as resolved for the whole sweep."""
    quoted = "'" + str(sweep_dir).replace("\\", "\\\\").replace("'", "\\'") + "'"
    return [[*job, f"hydra.sweep.dir={quoted}"] for job in batch]


class GridSweeper(BasicSweeper):
    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        self.overrides = self.split_arguments(overrides, self.max_batch_size)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        results: list[JobReturn] = []
        while not self.is_done():
            batch = self.get_job_batch()
            self.validate_batch_is_legal(batch)
            results += self.launcher.launch(
                pin_sweep_dir(batch, sweep_dir), initial_job_idx=len(results)
            )
        # Hydra imports every plugin for every command: the report's matplotlib, SciPy and
        # TensorBoard reader (~1 s) wait for a sweep's end.
        from archlab.records.report import finish_sweep

        finish_sweep(sweep_dir, failed_jobs(results), len(results))
        return [results]
