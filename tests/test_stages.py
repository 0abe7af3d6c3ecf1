"""`stages: [pretrain, finetune]` through the real `archlab-train`: both stages run as full
sub-runs that TensorBoard shows side by side, the finetune stage starts from the pretrain
stage's best checkpoint, a re-run skips the finished pretrain stage, a stage runs alone, and a
sweep over finetune settings pretrains once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_cli
from tensorboard.backend.event_processing import io_wrapper

QUIET = ("trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")
PIPELINE = (
    "model=cnn", "data=image", "model.channels=[8,8]", "stages=[pretrain,finetune]",
    "+task@pretrain.task=reconstruct", "pretrain.trainer.max_epochs=1", "trainer.max_epochs=1",
    "trainer.limit_train_batches=4", "data.label_fraction=0.2",
)  # fmt: skip


def _mtimes(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*.ckpt")}


@pytest.mark.slow
def test_the_pipeline_runs_both_stages_and_resumes_at_the_second(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = (*PIPELINE, f"hydra.run.dir={run_dir}", *QUIET)
    first = run_cli("archlab.train", *args)
    assert first.returncode == 0, first.stderr[-3000:]
    for stage in ("pretrain", "finetune"):
        sub = run_dir / stage
        assert (sub / "metrics.json").is_file() and (sub / "checkpoints" / "best.ckpt").is_file()
        assert (sub / ".hydra" / "config.yaml").is_file()
    pretrain = json.loads((run_dir / "pretrain" / "metrics.json").read_text())
    assert "val/loss" in pretrain and "val/acc" not in pretrain  # reconstruction, not labels
    finetune = json.loads((run_dir / "finetune" / "metrics.json").read_text())
    transfer = json.loads((run_dir / "finetune" / "transfer.json").read_text())
    assert transfer["checkpoint"] == str(run_dir / "pretrain" / "checkpoints" / "best.ckpt")
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["test/acc"] == finetune["test/acc"]
    assert summary["best_checkpoint"] == "finetune/checkpoints/best.ckpt"
    logdirs = sorted(
        str(Path(d).relative_to(run_dir)) for d in io_wrapper.GetLogdirSubdirectories(str(run_dir))
    )
    assert logdirs == ["finetune/tensorboard", "pretrain/tensorboard"]

    # Stage 2 was interrupted: its record is gone, its last.ckpt remains.
    (run_dir / "finetune" / "metrics.json").unlink()
    (run_dir / "metrics.json").unlink()
    before = _mtimes(run_dir / "pretrain")
    again = run_cli("archlab.train", *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{run_dir / 'pretrain'} already holds a finished run" in again.stderr
    assert _mtimes(run_dir / "pretrain") == before
    assert json.loads((run_dir / "metrics.json").read_text())["test/acc"] == finetune["test/acc"]

    # archlab-eval reads the pipeline's run directory as the finetuned model's.
    evaluated = run_cli("archlab.cli.evaluate", str(run_dir))
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads(evaluated.stdout)["test/acc"] == pytest.approx(finetune["test/acc"])

    # The finetune stage alone, from the pretrain run directory.
    alone = tmp_path / "alone"
    result = run_cli(
        "archlab.train", *PIPELINE, "stage=finetune", f"finetune.init_from={run_dir / 'pretrain'}",
        f"hydra.run.dir={alone}", *QUIET,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((alone / "metrics.json").read_text())["test/acc"] == finetune["test/acc"]


def _sweep(sweep_dir: Path, values: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "archlab.train", "-m", *PIPELINE, f"finetune.lr_mult={values}",
         f"hydra.sweep.dir={sweep_dir}", "hydra.sweep.subdir=${hydra.job.override_dirname}",
         *QUIET],
        cwd=REPO, env={"OMP_NUM_THREADS": "1", **os.environ},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _pretrained_once(sweep_dir: Path, jobs: int) -> None:
    shared = [p for p in (sweep_dir / ".pretrain").iterdir() if p.is_dir()]
    assert len(shared) == 1
    finetunes = sorted(sweep_dir.glob("*/finetune/transfer.json"))
    assert len(finetunes) == jobs
    sources = {json.loads(f.read_text())["checkpoint"] for f in finetunes}
    assert sources == {str(shared[0] / "checkpoints" / "best.ckpt")}


def test_a_sweep_over_finetune_settings_pretrains_once(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    process = _sweep(sweep_dir, "0.5,1.0")
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    _pretrained_once(sweep_dir, jobs=2)
    assert stderr.count("already holds a finished run") == 1  # the second job reused it


@pytest.mark.slow
def test_parallel_jobs_wait_for_one_shared_pretraining(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    processes = [_sweep(sweep_dir, "0.5"), _sweep(sweep_dir, "1.0")]
    errors = [p.communicate(timeout=600)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], errors
    _pretrained_once(sweep_dir, jobs=2)
    assert sum(e.count("already holds a finished run") for e in errors) == 1
