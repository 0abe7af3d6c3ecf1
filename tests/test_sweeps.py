"""Sweeps as a user runs them (`archlab-train -m ...` in subprocesses): grids with the basic and
the joblib launcher, an Optuna search, a failing job, interrupted sweeps re-run, the report,
and TensorBoard's HParams entries of every job."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import assert_accuracy_matches_confusion, run_cli
from omegaconf import OmegaConf
from optuna.trial import TrialState
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import plugin_data_pb2

from archlab.sweeps.threads import available_cores

QUIET = ("trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")
# A few steps per job: enough for checkpoints, metrics and TensorBoard events.
TINY = ("trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2", *QUIET)  # fmt: skip


def _sweep(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return run_cli("archlab.train", "-m", *overrides, cwd=tmp_path)


def _start(tmp_path: Path, *overrides: str) -> subprocess.Popen:
    """A sweep in the background; its output goes to files (a full pipe would block it)."""
    env = {"OMP_NUM_THREADS": "1", **os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "archlab.train", "-m", *overrides],
        cwd=tmp_path,
        env=env,
        stdout=(tmp_path / "first.out").open("w"),
        stderr=subprocess.STDOUT,
    )


def _kill_when(process: subprocess.Popen, ready, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, "the sweep ended before it could be interrupted"
        assert time.monotonic() < deadline, "the sweep never reached the point to interrupt"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)


def _sweep_dir(tmp_path: Path) -> Path:
    (sweep_dir,) = (tmp_path / "outputs" / "multiruns").iterdir()
    return sweep_dir


def _jobs(sweep_dir: Path) -> dict[str, Path]:
    """Job directories by the job's own overrides (as the user typed them)."""
    return {
        " ".join(OmegaConf.load(d / ".hydra" / "overrides.yaml")): d
        for d in sweep_dir.iterdir()
        if (d / ".hydra").is_dir()
    }


def _metrics(job_dir: Path) -> dict:
    return json.loads((job_dir / "metrics.json").read_text())


def _events(run_dir: Path) -> ea.EventAccumulator:
    guidance = {ea.TENSORS: 0, ea.IMAGES: 0}
    return ea.EventAccumulator(str(run_dir / "tensorboard"), size_guidance=guidance).Reload()


def _hparams(job_dir: Path) -> tuple[dict, set[str]]:
    """The job's HParams entry, read back by TensorBoard: hyperparameters, metric tags."""
    content = _events(job_dir).PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    tags = {m.name.tag for m in experiment.experiment.metric_infos}
    return dict(start.session_start_info.hparams), tags


# ---------------------------------------------------------------- grids
@pytest.mark.parametrize("launcher", [pytest.param("basic", marks=pytest.mark.slow), "joblib"])
def test_a_2x2_grid_runs_every_job_and_reports_it(tmp_path: Path, launcher: str) -> None:
    extra = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    result = _sweep(tmp_path, "model=cnn,rnn", "data=image,sequence", *TINY, *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep_dir = _sweep_dir(tmp_path)
    # The sweep's directory and each job's are named after their overrides.
    assert "data=image,sequence" in sweep_dir.name and "model=cnn,rnn" in sweep_dir.name
    jobs = _jobs(sweep_dir)
    assert len(jobs) == 4
    for overrides, job_dir in jobs.items():
        model, data = overrides.split()[:2]
        assert model in job_dir.name and data in job_dir.name
        config = OmegaConf.load(job_dir / ".hydra" / "config.yaml")
        assert f"model={config.model.name}" == model and f"data={config.data.modality}" == data
        metrics = _metrics(job_dir)
        assert_accuracy_matches_confusion(metrics, "test")
        # HParams: this job's config beside its final metrics, in the sweep's one TB root.
        hparams, tags = _hparams(job_dir)
        assert hparams["model/name"].string_value == config.model.name
        assert hparams["data/modality"].string_value == config.data.modality
        assert {"final/val/acc", "final/test/acc"} <= tags
        # Pictures of the final evaluation: confusion matrix, examples with predictions.
        pictures = set(_events(job_dir).Tags()["images"])
        assert {"confusion/val", "confusion/test", "examples/val", "examples/test"} <= pictures
        if launcher == "joblib":
            # Two jobs at once share the cores instead of each taking all of them.
            manifest = json.loads((job_dir / "manifest.json").read_text())
            assert manifest["hardware"]["torch_threads"] == max(1, available_cores() // 2)
    summary = (sweep_dir / "summary.md").read_text()
    for overrides in jobs:
        assert overrides.split()[0] in summary
    assert summary.count("| ok |") == 4
    csv_text = (sweep_dir / "summary.csv").read_text()
    assert csv_text.count("\njob,") == 4 and csv_text.count("\nconfiguration,") == 4
    assert (sweep_dir / "summary.png").stat().st_size > 0
    assert "| ok |" in result.stdout  # printed too


def test_a_failing_job_is_recorded_and_the_others_finish(tmp_path: Path) -> None:
    """A bad hyperparameter (heads that do not divide the width) and a NaN loss (infinite
    learning rate) fail three jobs; the sweep runs all four, then exits 1 naming them."""
    result = _sweep(
        tmp_path, "model=transformer", "model.num_heads=4,3", "task.optimizer.lr=0.003,inf",
        *TINY, "trainer.limit_train_batches=4",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    assert "3 of 4 jobs failed" in result.stderr
    assert "Traceback" not in result.stderr
    sweep_dir = _sweep_dir(tmp_path)
    jobs = _jobs(sweep_dir)
    assert len(jobs) == 4
    good = next(d for o, d in jobs.items() if "num_heads=4" in o and "lr=0.003" in o)
    assert "test/acc" in _metrics(good)
    nan = next(d for o, d in jobs.items() if "num_heads=4" in o and "lr=inf" in o)
    assert "loss became nan" in (nan / "error.txt").read_text()
    for overrides, job_dir in jobs.items():
        if "num_heads=3" in overrides:
            assert "not divisible by model.num_heads=3" in (job_dir / "error.txt").read_text()
            assert not (job_dir / "metrics.json").exists()
    summary = (sweep_dir / "summary.md").read_text()
    assert summary.count("| failed |") == 3 and "not divisible" in summary
    assert "loss became nan" in summary


@pytest.mark.slow
def test_a_killed_grid_sweep_rerun_skips_finished_jobs(tmp_path: Path) -> None:
    overrides = ("model=cnn,rnn", "trainer.max_epochs=3", *QUIET)
    process = _start(tmp_path, *overrides)
    multiruns = tmp_path / "outputs" / "multiruns"

    def first_job_finished() -> bool:
        return multiruns.is_dir() and any(multiruns.glob("*/*/metrics.json"))

    _kill_when(process, first_job_finished)
    sweep_dir = _sweep_dir(tmp_path)
    (finished,) = (p.parent for p in sweep_dir.glob("*/metrics.json"))
    stamp = (finished / "metrics.json").stat().st_mtime_ns

    result = _sweep(tmp_path, *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _sweep_dir(tmp_path) == sweep_dir
    assert f"{finished} already holds a finished run" in result.stderr
    assert (finished / "metrics.json").stat().st_mtime_ns == stamp
    jobs = _jobs(sweep_dir)
    assert len(jobs) == 2
    for job_dir in jobs.values():
        assert _metrics(job_dir)["epochs"] == 3
    assert (sweep_dir / "summary.md").read_text().count("| ok |") == 2


def test_text_runs_show_examples_with_their_predictions(train_cli) -> None:
    result, run_dir = train_cli("model=cnn", "data=text", "data.tokenizer=char", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    events = _events(run_dir)
    assert "confusion/test" in events.Tags()["images"]
    (table,) = events.Tensors("examples/test/text_summary")
    text = table.tensor_proto.string_val[0].decode()
    assert text.startswith("| true | predicted | text |")
    rows = text.splitlines()[2:]
    assert len(rows) == 16
    classes = json.loads((run_dir / "metrics.json").read_text())["classes"]
    for row in rows:
        true, predicted, shown = (cell.strip() for cell in row.strip("|").split(" | ", 2))
        assert true in classes and predicted.removesuffix(" ✗") in classes
        assert len(shown) > 20  # decoded docstring text, not token ids


# ---------------------------------------------------------------- Optuna search
def _study(sweep_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="archlab", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")


def test_an_interrupted_optuna_search_continues_where_it_stopped(tmp_path: Path) -> None:
    overrides = ("hparams_search=image", "hydra.sweeper.n_trials=3", "hydra.sweeper.pruner=none",
                 "trainer.max_epochs=2", "trainer.limit_train_batches=4", *QUIET)  # fmt: skip
    process = _start(tmp_path, *overrides)
    multiruns = tmp_path / "outputs" / "multiruns"

    def one_trial_done() -> bool:
        for db in multiruns.glob("*/optuna.db") if multiruns.is_dir() else ():
            with contextlib.closing(sqlite3.connect(db, timeout=10)) as connection:
                try:
                    query = "SELECT count(*) FROM trials WHERE state = 'COMPLETE'"
                    return connection.execute(query).fetchone()[0] >= 1
                except sqlite3.OperationalError:  # tables not created yet
                    return False
        return False

    _kill_when(process, one_trial_done)
    sweep_dir = _sweep_dir(tmp_path)
    complete_first = _study(sweep_dir).get_trials(states=[TrialState.COMPLETE])
    done_first = {t.number: t.params for t in complete_first}
    assert 1 <= len(done_first) < 3

    result = _sweep(tmp_path, *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _sweep_dir(tmp_path) == sweep_dir
    study = _study(sweep_dir)
    complete = study.get_trials(states=[TrialState.COMPLETE])
    # Three trials in all: the first attempt's finished trials kept, the rest run now.
    assert len(complete) == 3
    assert {t.number: t.params for t in complete if t.number in done_first} == done_first
    for trial in complete:
        assert set(trial.params) == {"task.optimizer.lr", "task.optimizer.weight_decay",
                                     "data.batch_size", "model.dropout"}  # fmt: skip
        assert 3e-4 <= trial.params["task.optimizer.lr"] <= 3e-2
        # The objective is the job's best val/acc, also its per-epoch reports.
        assert trial.value == max(trial.intermediate_values.values())
    assert f"Best trial #{study.best_trial.number}" in result.stdout
    summary = (sweep_dir / "summary.md").read_text()
    assert summary.count("| ok |") == 3


@pytest.mark.slow
def test_an_optuna_search_prunes_trials_that_trail(tmp_path: Path) -> None:
    result = _sweep(
        tmp_path, "hparams_search=image", "hydra.sweeper.n_trials=6",
        "hydra.sweeper.pruner_startup_trials=1", "hydra.sweeper.pruner_warmup_epochs=0",
        "trainer.max_epochs=4", "trainer.limit_train_batches=2", *QUIET,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    trials = _study(_sweep_dir(tmp_path)).trials
    assert len(trials) == 6
    assert any(t.state == TrialState.PRUNED for t in trials)
    for trial in trials:
        assert trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
        epochs = len(trial.intermediate_values)
        assert epochs == 4 if trial.state == TrialState.COMPLETE else epochs < 4


@pytest.mark.parametrize(
    ("param", "named"),
    [
        ("task.optimizer.lrr='interval(0.1, 0.2)'", ("task.optimizer.lrr", "task.optimizer.lr")),
        ("task.optimizer.lr='interval(-0.1, 0.2)'", ("task.optimizer.lr", "> 0")),
    ],
    ids=["misspelt key", "out of range"],
)
def test_a_bad_search_space_is_refused_before_any_trial(
    tmp_path: Path, param: str, named: tuple[str, ...]
) -> None:
    result = _sweep(tmp_path, "hparams_search=image", f"hydra.sweeper.params.{param}")
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("archlab-train: error: ")
    assert all(name in line for name in named)
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_an_optuna_search_runs_trials_in_parallel_with_joblib(tmp_path: Path) -> None:
    result = _sweep(
        tmp_path, "hparams_search=image", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=4", "hydra.sweeper.pruner=none",
        "trainer.max_epochs=2", "trainer.limit_train_batches=3", *QUIET,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("is launching 2 jobs") == 2
    trials = _study(_sweep_dir(tmp_path)).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert all(len(t.intermediate_values) == 2 for t in trials)
    assert len(_jobs(_sweep_dir(tmp_path))) == 4
