"""`logger=wandb`: offline Weights & Biases runs (no network), read back from the run's
transaction log with W&B's own reader (`wandb leet inspect --json`); an interrupted run,
resumed, continues the same W&B run id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing import event_accumulator as ea

pytest.importorskip("wandb", reason="wandb is an optional extra: pip install 'archlab[wandb]'")

QUIET = ("trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")
TINY = ("trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2", "trainer.log_every_n_steps=1", *QUIET)  # fmt: skip


def _env(tmp_path: Path) -> dict[str, str]:
    """W&B's staging and cache folders inside the test's directory, not the user's home."""
    folders = {k: str(tmp_path / k.lower()) for k in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR",
                                                      "WANDB_CONFIG_DIR")}  # fmt: skip
    return {"OMP_NUM_THREADS": "1", **os.environ, "PYTHONUNBUFFERED": "1", **folders}


def _train(tmp_path: Path, run_dir: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "archlab.train", "logger=[tensorboard,wandb]",
         f"hydra.run.dir={run_dir}", *TINY, *overrides],
        cwd=tmp_path, env=_env(tmp_path), stdout=(tmp_path / "train.out").open("a"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def _records(offline_run: Path) -> list[dict]:
    """The records of an offline run's .wandb log, by W&B's reader."""
    reader = Path(sys.executable).with_name("wandb")
    out = subprocess.run(
        [str(reader), "leet", "inspect", "--json", str(offline_run)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def _of(records: list[dict], kind: str) -> list[dict]:
    return [r[kind] for r in records if r["type"] == kind]


def _history(records: list[dict], key: str) -> dict[int, float]:
    """`key` by trainer step."""
    items = [h["item"] for h in _of(records, "history")]
    return {int(i["trainer/global_step"]): i[key] for i in items if key in i}


def test_a_run_logs_its_config_metrics_and_checkpoint_to_offline_wandb(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process = _train(tmp_path, run_dir, "trainer.max_epochs=1", "model.dropout=0.2")
    assert process.wait(timeout=600) == 0, (tmp_path / "train.out").read_text()[-3000:]
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    records = _records(offline)
    (run,) = _of(records, "run")
    assert run["display_name"] == run_dir.name  # the run directory's name (its overrides)
    assert run["project"] == "cnn-image"  # the run's name
    assert run["run_id"] == json.loads((run_dir / "trackers.json").read_text())["wandb"]["id"]
    config = {k: v for c in _of(records, "config") for k, v in c["update"].items()}
    assert config["model.dropout"] == 0.2 and config["data.modality"] == "image"
    assert config["task.optimizer.lr"] > 0 and config["model.channels"] == [32, 64]
    assert sorted(_history(records, "train/loss")) == [0, 1, 2]  # every step's loss
    summary = {k: v for s in _of(records, "summary") for k, v in s["update"].items()}
    recorded = json.loads((run_dir / "metrics.json").read_text())
    for key in ("val/acc", "test/acc", "test/loss"):
        assert summary[f"final/{key}"] == pytest.approx(recorded[key])
    (artifact,) = _of(records, "artifact")
    files = {f["path"] for f in artifact["manifest"]["contents"]}
    assert files == {"metrics.json", "checkpoints/best.ckpt"}
    # TensorBoard, logging beside it, keeps its pictures.
    events = ea.EventAccumulator(str(run_dir / "tensorboard"), size_guidance={ea.IMAGES: 0})
    assert {"confusion/test", "examples/test"} <= set(events.Reload().Tags()["images"])


@pytest.mark.slow
def test_an_interrupted_run_resumed_continues_its_wandb_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = _train(tmp_path, run_dir, "trainer.max_epochs=3")
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.is_file():  # the first epoch saved
        assert first.poll() is None, (tmp_path / "train.out").read_text()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    assert not (run_dir / "metrics.json").exists()
    first_id = json.loads((run_dir / "trackers.json").read_text())["wandb"]["id"]
    second = _train(tmp_path, run_dir, "trainer.max_epochs=3")
    assert second.wait(timeout=600) == 0, (tmp_path / "train.out").read_text()[-3000:]
    attempts = sorted((run_dir / "wandb").glob("offline-run-*"))
    # One folder per attempt, both of the first attempt's run (W&B names them by run id):
    # `wandb sync` uploads both into that one run.
    assert len(attempts) == 2 and all(a.name.endswith(f"-{first_id}") for a in attempts)
    resumed = _records(attempts[1])
    (run,) = _of(resumed, "run")
    assert run["run_id"] == first_id and run["display_name"] == run_dir.name
    # The resumed attempt starts after the checkpoint and finishes the run.
    steps = sorted(_history(resumed, "train/loss"))
    assert steps and steps[0] >= 3 and steps[-1] == 8, steps
    assert _of(resumed, "artifact") and _of(resumed, "exit")[0]["exit_code"] == 0
