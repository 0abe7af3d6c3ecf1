"""archlab-report on hand-built sweep directories: no training needed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import run_cli
from PIL import Image

from archlab.errors import DataError
from archlab.records.report import collect, write_report

JOBS = {  # job name -> (overrides, val/acc, val/loss)
    "0": (["model=mlp"], 0.70, 0.9),
    "1": (["model=rnn"], 0.90, 0.3),
    "2": (["model=cnn", "trainer.max_epochs=2"], 0.80, 0.5),
}


def _write_job(job_dir: Path, overrides: list[str], metrics: dict | None) -> None:
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job_dir / ".hydra" / "config.yaml").write_text(
        "callbacks:\n  checkpoint:\n    monitor: val/acc\n    mode: max\n"
    )
    if metrics is not None:
        (job_dir / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Three finished jobs and one (`10/`, to check numeric order) that crashed."""
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / "multirun.yaml").write_text("hydra: {}\n")
    for name, (overrides, acc, loss) in JOBS.items():
        metrics = {
            "val/acc": acc,
            "val/loss": loss,
            "test/acc": acc - 0.05,
            "best_checkpoint": "checkpoints/best.ckpt",
            "epochs": 2,
            "classes": ["a", "b"],
            "confusion_matrix": [[1, 0], [0, 1]],
        }
        _write_job(sweep_dir / name, overrides, metrics)
    _write_job(sweep_dir / "10", ["model=transformer"], None)
    (sweep_dir / "10" / "train.log").write_text("starting\nRuntimeError: out of memory\n\n")
    return sweep_dir


def _table_jobs(table: str) -> list[str]:
    """The job column of a Markdown table, top to bottom."""
    return [line.split("|")[2].strip() for line in table.splitlines()[2:]]


def test_collect_reads_jobs_in_numeric_order(sweep: Path) -> None:
    jobs = collect(sweep)
    assert [j.name for j in jobs] == ["0", "1", "2", "10"]
    assert jobs[2].overrides == ["model=cnn", "trainer.max_epochs=2"]
    assert jobs[1].metrics == {"test/acc": pytest.approx(0.85), "val/acc": 0.9, "val/loss": 0.3}
    assert jobs[3].error == "RuntimeError: out of memory"
    (sweep / "10" / "error.txt").write_text("ValueError: bad config\ndetails\n")
    assert collect(sweep)[3].error == "ValueError: bad config"


def test_report_files(sweep: Path) -> None:
    table = write_report(sweep)
    with (sweep / "summary.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "job",
        "overrides",
        "status",
        "test/acc",
        "val/acc",
        "val/loss",
        "error",
    ]
    assert [r["job"] for r in rows] == ["0", "1", "2", "10"]
    assert rows[2]["overrides"] == "model=cnn trainer.max_epochs=2"
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "failed"]
    assert float(rows[1]["val/acc"]) == 0.9
    assert rows[3]["val/acc"] == "" and rows[3]["error"] == "RuntimeError: out of memory"

    assert _table_jobs(table) == ["1", "2", "0", "10"]
    assert "RuntimeError: out of memory" in table.splitlines()[-1]
    markdown = (sweep / "summary.md").read_text()
    assert table in markdown and "val/acc" in markdown

    png = (sweep / "summary.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(sweep / "summary.png") as image:
        assert image.width > 200 and image.height > 100
    assert not [p for p in sweep.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


def test_mode_min_orders_ascending(sweep: Path) -> None:
    table = write_report(sweep, target="val/loss", mode="min")
    assert _table_jobs(table) == ["1", "2", "0", "10"]
    table = write_report(sweep, target="val/loss", mode="max")
    assert _table_jobs(table) == ["0", "2", "1", "10"]


def test_unknown_metric_is_refused(sweep: Path) -> None:
    with pytest.raises(DataError, match=r"val/f1.*val/acc"):
        write_report(sweep, target="val/f1")


def test_cli_prints_table(sweep: Path) -> None:
    result = run_cli("archlab.cli.report", str(sweep), "--metric", "val/loss", "--mode", "min")
    assert result.returncode == 0, result.stderr
    assert _table_jobs(result.stdout) == ["1", "2", "0", "10"]
    # What it prints is the table it wrote into the sweep directory.
    assert result.stdout.strip() and result.stdout in (sweep / "summary.md").read_text()


@pytest.mark.parametrize("make", ["empty", "missing"])
def test_cli_errors(tmp_path: Path, make: str) -> None:
    target = tmp_path / "sweep"
    if make == "empty":
        target.mkdir()
        (target / "multirun.yaml").write_text("hydra: {}\n")
    result = run_cli("archlab.cli.report", str(target))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archlab-report: error:")
    assert str(target) in lines[0] and "Traceback" not in result.stderr
    assert ("no job directories" in lines[0]) == (make == "empty")
    assert result.stdout == ""
