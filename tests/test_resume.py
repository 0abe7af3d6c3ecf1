"""Runs survive crashes and preemption: re-running the same command resumes the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

QUIET = ("trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")
# ~60 epochs of 20 steps of the default CNN: long enough to interrupt, short to finish.
LONG_RUN = ("trainer.max_epochs=60", "callbacks.checkpoint.every_n_train_steps=2", *QUIET)


def _start(cwd: Path, *overrides: str) -> subprocess.Popen:
    env = {"OMP_NUM_THREADS": "1", **os.environ}
    return subprocess.Popen(
        [sys.executable, "-m", "archlab.train", *overrides],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    process = _start(cwd, *overrides)
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _wait_for_saves(
    path: Path, process: subprocess.Popen, saves: int, timeout: float = 120
) -> None:
    """Until the checkpoint at `path` has been rewritten `saves` times: the run is then well
    into training, between two saves, however fast or loaded the machine is."""
    deadline, seen, last = time.monotonic() + timeout, 0, None
    while seen < saves:
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} was not rewritten {saves} times"
        stamp = path.stat().st_mtime_ns if path.exists() else None
        if stamp is not None and stamp != last:
            seen, last = seen + 1, stamp
        time.sleep(0.01)


def _only_run_dir(cwd: Path) -> Path:
    (run_dir,) = (cwd / "outputs" / "runs" / "cnn-image").iterdir()
    return run_dir


def test_sigterm_saves_a_checkpoint_and_the_same_command_resumes(tmp_path: Path) -> None:
    process = _start(tmp_path, *LONG_RUN)
    _wait_for(tmp_path / "outputs" / "runs" / "cnn-image", process)
    run_dir = _only_run_dir(tmp_path)
    _wait_for_saves(run_dir / "checkpoints" / "last.ckpt", process, saves=3)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Run the same command again to resume" in err
    assert not (run_dir / "metrics.json").exists()

    resumed = _run(tmp_path, *LONG_RUN)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restored all states from the checkpoint" in resumed.stderr + resumed.stdout
    assert _only_run_dir(tmp_path) == run_dir  # the same directory, not a new one
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["global_step"] == 60 * 20 and metrics["epochs"] == 60
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    for tag in ("train/loss", "val/acc"):
        steps = [e.step for e in events.Scalars(tag)]
        assert steps == sorted(set(steps)), f"{tag}: duplicated or out-of-order points"
    assert len(events.Scalars("val/acc")) == 60


def test_a_finished_run_is_not_trained_again(tmp_path: Path) -> None:
    first = _run(tmp_path, "trainer.max_epochs=1", *QUIET)
    assert first.returncode == 0, first.stderr[-3000:]
    metrics = _only_run_dir(tmp_path) / "metrics.json"
    written = metrics.stat().st_mtime_ns
    again = _run(tmp_path, "trainer.max_epochs=1", *QUIET)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already holds a finished run" in again.stderr
    assert metrics.stat().st_mtime_ns == written


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL])
def test_a_killed_run_resumed_ends_like_an_uninterrupted_one(tmp_path: Path, signum: int) -> None:
    overrides = (*LONG_RUN, "trainer.deterministic=true")
    (tmp_path / "a").mkdir()
    reference = _run(tmp_path / "a", *overrides)
    assert reference.returncode == 0, reference.stderr[-3000:]
    (tmp_path / "b").mkdir()
    process = _start(tmp_path / "b", *overrides)
    _wait_for(tmp_path / "b" / "outputs" / "runs" / "cnn-image", process)
    run_dir = _only_run_dir(tmp_path / "b")
    _wait_for_saves(run_dir / "checkpoints" / "last.ckpt", process, saves=5)
    process.send_signal(signum)
    process.communicate(timeout=60)
    assert not (run_dir / "metrics.json").exists(), "the run finished before it was killed"
    resumed = _run(tmp_path / "b", *overrides)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = json.loads((_only_run_dir(tmp_path / "a") / "metrics.json").read_text())
    actual = json.loads((run_dir / "metrics.json").read_text())
    assert {k: v for k, v in actual.items() if "/" in k} == {
        k: v for k, v in expected.items() if "/" in k
    }


def test_resuming_with_another_config_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process = _start(REPO, *LONG_RUN, f"hydra.run.dir={run_dir}")
    _wait_for(run_dir / "checkpoints" / "last.ckpt", process)
    process.kill()
    process.communicate(timeout=60)
    other = _run(REPO, *LONG_RUN, f"hydra.run.dir={run_dir}", "model.channels=[8,16]")
    assert other.returncode == 2
    (line,) = [x for x in other.stderr.splitlines() if x.startswith("archlab-train: error:")]
    assert "model.channels" in line and "[32, 64]" in line
    assert (run_dir / "checkpoints" / "last.ckpt").exists()  # nothing of the old run is lost


def test_a_run_killed_after_its_first_best_checkpoint_ends_with_one_best_ckpt_and_no_debris(
    tmp_path: Path,
) -> None:
    """A crash between writing best.ckpt and the next last.ckpt leaves a best.ckpt that the
    resumed run does not know of: it must replace it, not add best-v1.ckpt beside it (eval,
    predict, export and the trackers read checkpoints/best.ckpt). A save the kill cut short
    leaves a temporary file: the resumed run deletes it (a large model's is gigabytes)."""
    run_dir = tmp_path / "run"
    overrides = ("trainer.max_epochs=3", "callbacks.checkpoint.every_n_train_steps=2", *QUIET)
    process = _start(REPO, *overrides, f"hydra.run.dir={run_dir}")
    folder = run_dir / "checkpoints"
    _wait_for(folder / "last.ckpt", process)  # step 2, before the first validation
    early = (folder / "last.ckpt").read_bytes()
    _wait_for(folder / "best.ckpt", process)  # the first validation's best
    process.kill()
    process.communicate(timeout=60)
    assert not (run_dir / "metrics.json").exists(), "the run finished before it was killed"
    (folder / "last.ckpt").write_bytes(early)  # the crash came before last.ckpt learnt of it
    (folder / ".last.ckpt.cut0short.tmp").write_bytes(early[:100])  # a save the kill cut short
    resumed = _run(REPO, *overrides, f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # one best.ckpt, and no temporary file of an interrupted save left on disk
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt"]
