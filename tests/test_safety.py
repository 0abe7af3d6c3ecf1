"""Checkpoints and configs from elsewhere cannot run code; a kill mid-save loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import run_cli


class _RunsCode:
    """Unpickling this calls os.system: what a hostile checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("safety") / "run"
    result = run_cli(
        "archlab.train",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "test_after_fit=false",
        f"hydra.run.dir={run_dir}",
        "trainer.enable_progress_bar=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir / "checkpoints" / "last.ckpt"


def _refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in result.stderr


def test_a_checkpoint_whose_pickle_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "payload": _RunsCode(marker)}, hostile)
    _refused(run_cli("archlab.cli.evaluate", str(hostile)), "hostile.ckpt", "refused")
    assert not marker.exists()

    run_dir = tmp_path / "run"  # and as the checkpoint a re-run would resume from
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(hostile.read_bytes())
    result = run_cli("archlab.train", f"hydra.run.dir={run_dir}")
    _refused(result, "last.ckpt")
    assert not marker.exists()


def test_a_checkpoint_whose_config_names_a_callable_is_refused(
    tmp_path: Path, trained_checkpoint: Path
) -> None:
    checkpoint = torch.load(trained_checkpoint, weights_only=True)
    marker = tmp_path / "pwned"
    checkpoint["hyper_parameters"]["model"]["_target_"] = "os.system"
    checkpoint["hyper_parameters"]["model"]["command"] = f"touch {marker}"
    crafted = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, crafted)
    _refused(run_cli("archlab.cli.evaluate", str(crafted)), "model._target_")
    assert not marker.exists()


def test_a_kill_during_a_checkpoint_save_leaves_the_previous_one_loadable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "last.ckpt"
    writer = (
        "import sys, torch\n"
        "from archlab.checkpointing.atomic_io import AtomicCheckpointIO\n"
        "io = AtomicCheckpointIO()\n"
        "for step in range(10**6):\n"
        "    io.save_checkpoint({'step': step, 'w': torch.full((4_000_000,), float(step))},"
        f" {str(path)!r})\n"
        "    print(step, flush=True)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    for _ in range(3):  # let a few saves complete, then kill in the middle of the next ones
        assert process.stdout.readline(), "the writer died"
    time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    saved = torch.load(path, weights_only=True)
    assert torch.equal(saved["w"], torch.full((4_000_000,), float(saved["step"])))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "overrides",
    [
        ("data.source=folder", "data.path=/nonexistent/images"),  # bad input
        ("model.channels=[8]",),  # another model in the same directory
    ],
    ids=["missing-data", "other-config"],
)
def test_a_refused_command_leaves_an_existing_run_untouched(
    trained_checkpoint: Path, overrides: tuple[str, ...]
) -> None:
    run_dir = trained_checkpoint.parent.parent
    before = _snapshot(run_dir)
    result = run_cli("archlab.train", *overrides, f"hydra.run.dir={run_dir}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert _snapshot(run_dir) == before


def test_a_checkpoint_of_another_architecture_is_named_with_the_mismatch(
    tmp_path: Path, trained_checkpoint: Path
) -> None:
    checkpoint = torch.load(trained_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"]["model"]["channels"] = [8, 16]  # config and weights disagree
    crafted = tmp_path / "mismatch.ckpt"
    torch.save(checkpoint, crafted)
    _refused(run_cli("archlab.cli.evaluate", str(crafted)), "mismatch.ckpt", "size mismatch")
