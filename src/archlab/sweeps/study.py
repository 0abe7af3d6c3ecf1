"""Optuna search for archlab's sweeper: the search space from Hydra's sweep syntax, a study
stored next to the sweep's jobs, and the per-epoch pruning a trial's job does on itself.

The sweeper (hydra_plugins.archlab_sweepers.optuna_search) asks the study for trials and
launches one job per trial, numbered as the trial. A job finds its trial in the study of its
sweep directory, reports its validation metric after each epoch and stops early (gracefully:
best checkpoint, metrics.json) when the pruner says so.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.trainer.states import TrainerFn

from archlab.config.job import JobContext

STUDY_FILE = "optuna.db"
SWEEPER = "hydra_plugins.archlab_sweepers.optuna_search.OptunaSweeper"
PRUNED_AT = "pruned_at_epoch"
INTERRUPTED = "interrupted"


def storage_url(sweep_dir: Path) -> str:
    return f"sqlite:///{(sweep_dir / STUDY_FILE).resolve()}"


def open_study(sweep_dir: Path, name: str, direction: str, sampler: str, seed: int,
               pruner: str, warmup_epochs: int, startup_trials: int) -> optuna.Study:  # fmt: skip
    """The sweep's study, created or (same command, same sweep directory) loaded."""
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
    pruners = {
        "median": optuna.pruners.MedianPruner(
            n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs
        ),
        "none": optuna.pruners.NopPruner(),
    }
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name,
        storage=storage_url(sweep_dir),
        direction=direction,
        sampler=samplers[sampler](seed=seed),
        pruner=pruners[pruner],
        load_if_exists=True,
    )
    # A continued search must not propose the first attempt's trials again.
    if earlier := len(study.get_trials(deepcopy=False)):
        study.sampler = samplers[sampler](seed=seed + earlier)
    return study


def requeue_interrupted(study: optuna.Study) -> int:
    """Trials left running by a killed attempt are run again (their jobs resume from their
    last checkpoints): marked failed-and-interrupted, their parameters queued anew."""
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        optuna.Trial(study, trial._trial_id).set_user_attr(INTERRUPTED, True)
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)
    return len(stale)


def finished_trials(study: optuna.Study) -> int:
    """Trials that count towards n_trials: done, pruned, or failed (not interrupted)."""
    return sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and not t.user_attrs.get(INTERRUPTED))
        for t in study.get_trials(deepcopy=False)
    )


def tell_result(
    uncached: optuna.storages.RDBStorage,
    study: optuna.Study,
    trial: optuna.Trial,
    ok: bool,
    value: Any,
) -> None:
    """Record a finished job: its value, pruned (it stopped itself early), or failed.

    `uncached`: the study's storage without this process's cache, to read what the job wrote.
    """
    pruned = uncached.get_trial(trial._trial_id).user_attrs.get(PRUNED_AT) is not None
    if not ok or value is None or not math.isfinite(float(value)):
        study.tell(trial, state=TrialState.FAIL)
    elif pruned:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, float(value))


def describe_best(study: optuna.Study) -> str:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return "No trial completed."
    best = study.best_trial
    return f"Best trial #{best.number}: {best.value:.4f} with {best.params}"


class PruneTrial(Callback):
    """Reports the monitored validation metric to the trial after each epoch; stops the fit
    (keeping its best checkpoint and final metrics) when the pruner gives up on the trial."""

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        self.trial = trial
        self.monitor = monitor

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking or value is None:
            return
        epoch = trainer.current_epoch
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            self.trial.set_user_attr(PRUNED_AT, epoch)
            trainer.should_stop = True


def trial_pruning(monitor: str, job: JobContext) -> PruneTrial | None:
    """The pruning callback when this job is an Optuna trial, else None."""
    if job.sweep_dir is None or job.sweeper != SWEEPER:
        return None
    study = optuna.load_study(study_name=job.study_name, storage=storage_url(job.sweep_dir))
    # The sweeper numbers each job as its trial.
    trial = study.get_trials(deepcopy=False)[job.job_number]
    return PruneTrial(optuna.Trial(study, trial._trial_id), monitor)
