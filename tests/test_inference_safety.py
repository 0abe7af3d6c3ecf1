"""Every inference command refuses a checkpoint that would run code when loaded, before
anything runs, and `archlab-export` names the pip command when its optional extra is missing."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_cli

COMMANDS = {
    "predict": ["inputs.txt"],
    "generate": ["--prompt", "hello"],
    "export": ["--format", "torch-export"],
}


class _RunsCode:
    """Unpickling this calls os.system: what a hostile checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def hostile_run(tmp_path: Path) -> tuple[Path, Path]:
    """A run directory whose best checkpoint runs `touch <marker>` if unpickled."""
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    payload = {"state_dict": {}, "hyper_parameters": {}, "payload": _RunsCode(marker)}
    torch.save(payload, run_dir / "checkpoints" / "best.ckpt")
    return run_dir, marker


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_hostile_checkpoint_is_refused_by_every_inference_command(
    command: str, hostile_run: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    run_dir, marker = hostile_run
    main = importlib.import_module(f"archlab.cli.{command}").main
    for target in (run_dir / "checkpoints" / "best.ckpt", run_dir):  # the file, its run dir
        with pytest.raises(SystemExit) as stop:
            main([str(target), *COMMANDS[command]])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"archlab-{command}: error: Cannot load checkpoint ")
        assert "best.ckpt" in err and "refused for safety" in err
        assert not marker.exists()
    assert not (run_dir / "export").exists()


def test_the_refusal_is_one_line_from_a_real_process(hostile_run: tuple[Path, Path]) -> None:
    run_dir, marker = hostile_run
    result = run_cli("archlab.cli.predict", str(run_dir), "inputs.txt")
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and "refused for safety" in result.stderr
    assert not marker.exists()


def test_export_without_its_extra_names_the_pip_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from archlab.cli import export

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(SystemExit) as stop:
        export.main([str(tmp_path / "any"), "--format", "onnx"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert (
        err
        == "archlab-export: error: --format onnx needs onnxruntime: pip install 'archlab[export]'\n"
    )
