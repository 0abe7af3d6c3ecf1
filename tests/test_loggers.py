"""Choosing loggers: one or several (`logger=[tensorboard,mlflow]`), configs saved before that
still load, tracker packages that are missing refused with the install command, a default run
that never loads mlflow or wandb, and the names and params a run gets in a tracker."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from omegaconf import OmegaConf

from archlab.config.job import JobContext
from archlab.config.preflight import compose_config
from archlab.config.schema import MLflowLoggerConfig, WandbLoggerConfig
from archlab.config.validate import validate
from archlab.records.trackers import tracker_names, tracker_params

CONF = REPO / "conf"


def _selected(*overrides: str) -> set[str]:
    logger = validate(compose_config("train", list(overrides))).logger
    return {name for name, node in logger.items() if node is not None}


def test_logger_selects_one_logger_or_several() -> None:
    assert _selected() == {"tensorboard"}  # the default, unchanged
    assert _selected("logger=mlflow") == {"mlflow"}
    assert _selected("logger=[tensorboard,mlflow]") == {"tensorboard", "mlflow"}
    assert _selected("logger=[tensorboard,csv,wandb]") == {"tensorboard", "csv", "wandb"}
    assert _selected("logger=none") == set()


def test_a_config_saved_before_loggers_could_be_combined_still_loads() -> None:
    """Checkpoints and run records hold `logger.name`: archlab-eval and resumption read them."""
    plain = OmegaConf.to_container(compose_config("train", []))
    for name, expected in (("tensorboard", {"tensorboard"}), ("csv", {"csv"}), ("none", set())):
        plain["logger"] = {"name": name}
        logger = validate(OmegaConf.create(plain)).logger
        assert {k for k, v in logger.items() if v is not None} == expected


@pytest.mark.parametrize(("name", "schema"), [("mlflow", MLflowLoggerConfig),
                                              ("wandb", WandbLoggerConfig)])  # fmt: skip
def test_tracker_yaml_equals_its_schema_defaults(name: str, schema: type) -> None:
    raw = OmegaConf.to_container(OmegaConf.load(CONF / "logger" / f"{name}.yaml"))
    assert raw == {name: dataclasses.asdict(schema())}


def _entry_point(blocked: list[str], *overrides: str) -> subprocess.CompletedProcess:
    """`archlab-train overrides...` in a Python where the `blocked` packages cannot be
    imported (as if not installed)."""
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        f"sys.argv = ['archlab-train', *{list(overrides)!r}]\n"
        "from archlab.cli.train import main\n"
        "main()\n"
        "print('loaded:', sorted(n for n in ('mlflow', 'wandb') if sys.modules.get(n)))\n"
    )
    env = {"OMP_NUM_THREADS": "1", **os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize("tracker", ["mlflow", "wandb"])
def test_a_missing_tracker_package_is_refused_with_its_install_command(
    tmp_path: Path, tracker: str
) -> None:
    run_dir = tmp_path / "run"
    result = _entry_point([tracker], f"logger=[tensorboard,{tracker}]", f"hydra.run.dir={run_dir}")
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("archlab-train: error:"), result.stderr
    assert f"pip install 'archlab[{tracker}]'" in lines[0]
    assert not run_dir.exists()


def test_a_run_that_names_no_tracker_never_loads_mlflow_or_wandb(tmp_path: Path) -> None:
    """Both blocked: an import of either would fail the run."""
    result = _entry_point(
        ["mlflow", "wandb"], f"hydra.run.dir={tmp_path / 'run'}", "trainer.max_epochs=1",
        "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "test_after_fit=false",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded: []" in result.stdout
    assert (tmp_path / "run" / "tensorboard").is_dir()


def test_a_tracker_run_is_named_after_its_run_directory(tmp_path: Path) -> None:
    cfg = validate(compose_config("train", ["name=digits"]))
    single = JobContext(run_dir=tmp_path / "runs" / "digits" / "model.dropout=0.2")
    assert tracker_names(cfg, single.run_dir, single, None) == ("digits", "model.dropout=0.2")
    assert tracker_names(cfg, single.run_dir, single, "team") == ("team", "model.dropout=0.2")
    sweep = tmp_path / "multiruns" / "model=cnn,rnn"
    job = JobContext(run_dir=sweep / "model=rnn", sweep_dir=sweep)
    # A sweep's jobs share one experiment; a stage's run is named inside its job's.
    assert tracker_names(cfg, job.run_dir, job, None) == ("model=cnn,rnn", "model=rnn")
    stage = job.run_dir / "finetune"
    assert tracker_names(cfg, stage, job, None) == ("model=cnn,rnn", "model=rnn/finetune")
    shared = sweep / ".pretrain" / "0a1b2c"
    assert tracker_names(cfg, shared, job, None) == ("model=cnn,rnn", "pretrain/0a1b2c")


def test_tracker_params_are_the_flat_config_with_the_command_lines_keys_first() -> None:
    overrides = ["trainer.max_epochs=2", "model.dropout=0.3"]
    cfg = validate(compose_config("train", overrides))
    params = tracker_params(cfg, overrides)
    assert list(params)[:2] == ["model.dropout", "trainer.max_epochs"]
    assert params["model.dropout"] == 0.3 and params["model.channels"] == [32, 64]
    assert params["task.optimizer.betas"] == [0.9, 0.999] and params["seed"] == 42
