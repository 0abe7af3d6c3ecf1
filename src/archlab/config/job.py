"""What Hydra decided for one job (its directory, its sweep, its launcher), read once by the
entry point and passed down, so nothing below the entry point reads Hydra's global state.

A rank started by torchrun rebuilds the same context from the Hydra config its job wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf


@dataclass(frozen=True)
class JobContext:
    run_dir: Path
    sweep_dir: Path | None = None  # the multirun's directory; None for a single run
    job_number: int = 0  # Hydra's number of this job within its sweep
    launcher_jobs: int | None = None  # jobs the launcher runs at once (joblib's n_jobs)
    sweeper: str | None = None  # the sweeper's `_target_`
    study_name: str | None = None  # the Optuna study of an archlab_optuna sweep
    overrides: tuple[str, ...] = ()  # this job's command-line overrides
    hydra: DictConfig | None = None  # Hydra's own config, recorded in `.hydra/hydra.yaml`

    @property
    def in_sweep(self) -> bool:
        return self.sweep_dir is not None

    def at(self, run_dir: Path) -> JobContext:
        """The same job, running in `run_dir` (a stage's sub-run, a rank's run)."""
        return replace(self, run_dir=run_dir)

    @classmethod
    def from_hydra(cls, hydra: DictConfig, run_dir: Path | None = None) -> JobContext:
        """From Hydra's config of this job (`HydraConfig.get()` or the copy a rank reads)."""
        multirun = str(hydra.mode) in (str(RunMode.MULTIRUN), RunMode.MULTIRUN.name)
        sweeper = hydra.get("sweeper") or {}
        launcher = hydra.get("launcher") or {}
        return cls(
            run_dir=Path(run_dir or hydra.runtime.output_dir),
            sweep_dir=Path(hydra.sweep.dir) if multirun else None,
            job_number=int(hydra.job.get("num") or 0),
            launcher_jobs=launcher.get("n_jobs"),
            sweeper=sweeper.get("_target_"),
            study_name=sweeper.get("study_name"),
            overrides=tuple(hydra.overrides.task),
            hydra=hydra,
        )

    @classmethod
    def load(cls, path: Path, run_dir: Path) -> JobContext:
        """The context a launching job saved with `save` (its Hydra config), else a plain one."""
        if not path.is_file():
            return cls(run_dir=run_dir)
        return cls.from_hydra(OmegaConf.load(path), run_dir)

    def save(self, path: Path) -> None:
        if self.hydra is not None:
            path.write_text(OmegaConf.to_yaml(self.hydra))
