"""`logger=mlflow` against a real MLflow tracking server (`mlflow server`, SQLite backend, on a
free localhost port, started and stopped here): a run and a 2-job sweep logged to it, then read
back through MLflow's client; an interrupted job resumed into its own MLflow run; a server that
does not answer refused before training, or left out with `logger.mlflow.required=false`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing import event_accumulator as ea

mlflow = pytest.importorskip(
    "mlflow", reason="mlflow is an optional extra: `make test-all` installs it (.[mlflow])"
)
from mlflow.tracking import MlflowClient  # noqa: E402

QUIET = ("trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")
TINY = ("trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2", "trainer.log_every_n_steps=1", *QUIET)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/health", timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` in its own process group (it starts uvicorn and job-runner children),
    all of which are stopped after the module's tests. Yields its URL."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts")],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not _answers(url):
            assert process.poll() is None, (folder / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not answer in 180 s"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _runs(client: MlflowClient, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    assert found is not None, [e.name for e in client.search_experiments()]
    return client.search_runs([found.experiment_id])


def _artifacts(client: MlflowClient, run_id: str) -> set[str]:
    top = client.list_artifacts(run_id)
    nested = [a.path for d in top if d.is_dir for a in client.list_artifacts(run_id, d.path)]
    return {a.path for a in top if not a.is_dir} | set(nested)


def _metric_steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


# ---------------------------------------------------------------- default suite
def test_a_run_logs_its_config_metrics_and_checkpoint_to_mlflow(
    server: str, train_cli, tmp_path: Path
) -> None:
    result, run_dir = train_cli(
        "logger=[tensorboard,mlflow]", f"logger.mlflow.tracking_uri={server}",
        "model.dropout=0.2", "name=mlflow-single", *TINY,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(server)
    (run,) = _runs(client, "mlflow-single")  # experiment: the run's name
    assert run.info.run_name == run_dir.name  # the run directory's name (its overrides)
    assert run.info.status == "FINISHED"
    saved = json.loads((run_dir / "trackers.json").read_text())["mlflow"]
    assert saved["run_id"] == run.info.run_id  # what a resumed run continues
    # Params: the run's config, flattened to the keys a command line would set.
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    params = run.data.params
    assert params["model.dropout"] == "0.2" and params["data.modality"] == "image"
    for key in ("model.channels", "task.optimizer.lr", "trainer.max_epochs", "seed"):
        assert params[key] == str(OmegaConf.select(config, key)), key
    recorded = json.loads((run_dir / "metrics.json").read_text())
    for key in ("val/acc", "test/acc", "val/loss"):
        assert run.data.metrics[f"final/{key}"] == pytest.approx(recorded[key])
    # Per-step training curves: one point per logged step.
    assert _metric_steps(client, run.info.run_id, "train/loss") == [0, 1, 2]
    assert _artifacts(client, run.info.run_id) == {"metrics.json", "checkpoints/best.ckpt"}
    # The TensorBoard logger beside it keeps every dashboard: HParams and pictures.
    events = ea.EventAccumulator(str(run_dir / "tensorboard"), size_guidance={ea.IMAGES: 0})
    tags = events.Reload().Tags()
    assert {"confusion/val", "confusion/test", "examples/val"} <= set(tags["images"])
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")


def test_an_unreachable_tracking_server_is_refused_before_training(train_cli) -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    started = time.monotonic()
    result, run_dir = train_cli("logger=mlflow", f"logger.mlflow.tracking_uri={url}", *TINY)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("archlab-train: error:"), result.stderr
    assert url in errors[0] and "logger.mlflow.required=false" in errors[0]
    assert "Traceback" not in result.stderr
    assert not run_dir.exists()  # refused before Hydra made a run directory
    assert time.monotonic() - started < 60  # not MLflow's minutes of retries


# ---------------------------------------------------------------- slow
@pytest.mark.slow
def test_with_required_false_an_unreachable_server_is_a_warning_and_the_run_goes_on(
    train_cli,
) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    result, run_dir = train_cli(
        "logger=mlflow", f"logger.mlflow.tracking_uri={url}", "logger.mlflow.required=false",
        *TINY,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"archlab-train: warning: the MLflow tracking server {url}" in result.stderr
    assert "logs to tensorboard only" in result.stderr
    assert (run_dir / "metrics.json").is_file()
    events = ea.EventAccumulator(str(run_dir / "tensorboard")).Reload()
    assert "val/acc" in events.Tags()["scalars"]
    assert not (run_dir / "trackers.json").exists()


def _sweep(tmp_path: Path, server: str, *extra: str) -> subprocess.Popen:
    env = {"OMP_NUM_THREADS": "1", **os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "archlab.train", "-m", "logger=[tensorboard,mlflow]",
         f"logger.mlflow.tracking_uri={server}", "model.dropout=0.0,0.3",
         "trainer.max_epochs=2", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
         "trainer.limit_test_batches=2", "trainer.log_every_n_steps=1", *QUIET, *extra],
        cwd=tmp_path, env=env, stdout=(tmp_path / "sweep.out").open("a"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.mark.slow
def test_a_sweep_is_one_experiment_one_run_per_job_and_a_resumed_job_keeps_its_run(
    server: str, tmp_path: Path
) -> None:
    multiruns = tmp_path / "outputs" / "multiruns"

    def interrupted() -> bool:  # a job past its first epoch, not finished
        return any(
            not (c.parent.parent / "metrics.json").exists()
            for c in multiruns.glob("*/*/checkpoints/last.ckpt")
        )

    first = _sweep(tmp_path, server)
    deadline = time.monotonic() + 300
    while not interrupted():
        assert first.poll() is None, (tmp_path / "sweep.out").read_text()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    second = _sweep(tmp_path, server)  # the same command: resumes the interrupted job
    assert second.wait(timeout=600) == 0, (tmp_path / "sweep.out").read_text()[-3000:]

    (sweep_dir,) = multiruns.iterdir()
    jobs = [d for d in sweep_dir.iterdir() if (d / "metrics.json").is_file()]
    assert len(jobs) == 2
    client = MlflowClient(server)
    found = _runs(client, sweep_dir.name)  # one experiment
    runs = {r.info.run_name: r for r in found}
    # One run per job, named by its directory: the resumed job did not open a second one.
    assert len(found) == 2 and set(runs) == {job.name for job in jobs}
    for job in jobs:
        run = runs[job.name]
        saved = json.loads((job / "trackers.json").read_text())["mlflow"]["run_id"]
        assert saved == run.info.run_id and run.info.status == "FINISHED"
        dropout = OmegaConf.load(job / ".hydra" / "config.yaml").model.dropout
        assert float(run.data.params["model.dropout"]) == dropout
        recorded = json.loads((job / "metrics.json").read_text())
        assert run.data.metrics["final/test/acc"] == pytest.approx(recorded["test/acc"])
        assert _artifacts(client, run.info.run_id) == {"metrics.json", "checkpoints/best.ckpt"}
        # Both epochs' training steps in the one run, the resumed job's included.
        steps = _metric_steps(client, run.info.run_id, "train/loss")
        assert {0, 1, 2, 3, 4, 5} <= set(steps), steps
