"""archlab-report on generated sweep directories (real metrics.json, real TensorBoard event
files): no training needed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from archlab.errors import DataError
from archlab.records.aggregate import compare, summarise
from archlab.records.report import collect, write_report
from archlab.records.report_figures import class_f1, pareto_front

COST = {"params": 1000, "flops_per_example": 2e5, "train_time_s": 10.0, "peak_memory_mb": 300}
# model -> val/acc of seeds 1, 2, 3: rnn is best by the mean, but within cnn's noise.
CLOSE = {"cnn": (0.80, 0.85, 0.90), "rnn": (0.81, 0.84, 0.93)}
APART = {"cnn": (0.80, 0.81, 0.86), "rnn": (0.90, 0.92, 0.95)}


def _write_job(
    job_dir: Path,
    overrides: list[str],
    metrics: dict | None,
    seed: int = 42,
    curve: list[float] | None = None,
    split_seed: int = 0,
) -> None:
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job_dir / ".hydra" / "config.yaml").write_text(
        f"seed: {seed}\ndata:\n  split_seed: {split_seed}\n"
        "callbacks:\n  checkpoint:\n    monitor: val/acc\n    mode: max\n"
    )
    if metrics is not None:
        (job_dir / "metrics.json").write_text(json.dumps(metrics))
    if curve:
        with SummaryWriter(job_dir / "tensorboard") as writer:
            for step, value in enumerate(curve, start=1):
                writer.add_scalar("val/acc", value, step * 10)


def _metrics(acc: float, params: int = 1000) -> dict:
    return {
        "val/acc": acc,
        "val/loss": 1 - acc,
        "test/acc": acc - 0.05,
        "best_checkpoint": "checkpoints/best.ckpt",
        "epochs": 2,
        "classes": ["a", "b"],
        "confusion_matrix": {"val": [[5, 0], [0, 5]], "test": [[3, 1], [0, 4]]},
        "cost": {**COST, "params": params, "peak_memory_kind": "rss"},
    }


def _sweep(root: Path, results: dict[str, tuple[float, ...]], seeds=(1, 2, 3)) -> Path:
    """One job per model and seed, numbered as Hydra does."""
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text("hydra: {}\n")
    number = 0
    for model, values in results.items():
        for seed, acc in zip(seeds, values, strict=True):
            overrides = [f"model={model}", f"seed={seed}"]
            params = 1000 if model == "cnn" else 5000
            curve = [acc - 0.2, acc - 0.1, acc]
            _write_job(root / str(number), overrides, _metrics(acc, params), seed, curve)
            number += 1
    return root


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Three jobs of different models and one (`10/`, to check numeric order) that crashed."""
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / "multirun.yaml").write_text("hydra: {}\n")
    jobs = {"0": ("mlp", 0.70), "1": ("rnn", 0.90), "2": ("cnn", 0.80)}
    for name, (model, acc) in jobs.items():
        overrides = [f"model={model}"] + (["trainer.max_epochs=2"] if model == "cnn" else [])
        _write_job(sweep_dir / name, overrides, _metrics(acc))
    _write_job(sweep_dir / "10", ["model=transformer"], None)
    (sweep_dir / "10" / "train.log").write_text("starting\nRuntimeError: out of memory\n\n")
    return sweep_dir


def _rows(text: str, heading: str) -> list[list[str]]:
    """The cells of the Markdown table under `## heading`."""
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")][2:]
    return [[cell.strip() for cell in ln.strip("|").split(" | ")] for ln in lines]


def test_collect_reads_jobs_in_numeric_order(sweep: Path) -> None:
    jobs = collect(sweep)
    assert [j.name for j in jobs] == ["0", "1", "2", "10"]
    assert jobs[2].overrides == ["model=cnn", "trainer.max_epochs=2"]
    assert jobs[1].metrics["val/acc"] == 0.9 and jobs[1].metrics["cost/params"] == 1000
    assert jobs[1].confusion == [[3, 1], [0, 4]]  # the test split's
    assert jobs[3].error == "RuntimeError: out of memory"
    (sweep / "10" / "error.txt").write_text("ValueError: bad config\ndetails\n")
    assert collect(sweep)[3].error == "ValueError: bad config"


def test_summary_of_fixed_numbers() -> None:
    summary = summarise([0.80, 0.82, 0.84])
    assert summary.n == 3
    assert summary.mean == pytest.approx(0.82)
    assert summary.sd == pytest.approx(0.02)
    # t(0.975, 2 degrees of freedom) = 4.3027 (any t table); half-width t * sd / sqrt(n).
    half = 4.302653 * 0.02 / math.sqrt(3)
    assert (summary.low, summary.high) == (
        pytest.approx(0.82 - half, abs=1e-6),
        pytest.approx(0.82 + half, abs=1e-6),
    )
    single = summarise([0.7])
    assert single.mean == 0.7 and math.isnan(single.sd) and math.isnan(single.low)


def test_paired_test_against_known_p_values() -> None:
    # Differences 0.10, 0.11, 0.09: t = 0.10 / (0.01 / sqrt 3) = 17.32 on 2 df, p = 0.0033.
    apart = compare(dict(enumerate(APART["rnn"])), dict(enumerate(APART["cnn"])))
    assert apart.test == "paired t-test" and apart.n == 3
    assert apart.p_value == pytest.approx(0.003317, abs=1e-5) and apart.distinguishable
    close = compare(dict(enumerate(CLOSE["rnn"])), dict(enumerate(CLOSE["cnn"])))
    assert close.p_value > 0.05 and not close.distinguishable
    unpaired = compare({1: 0.9, 2: 0.92}, {3: 0.8, 4: 0.81})
    assert unpaired.test == "Welch t-test"
    assert compare({1: 0.9}, {1: 0.8}).test == "none"


def test_report_aggregates_over_seeds(tmp_path: Path) -> None:
    sweep_dir = _sweep(tmp_path / "sweep", APART)
    text = write_report(sweep_dir)
    rows = _rows(text, "Configurations")
    assert [r[1] for r in rows] == ["model=rnn", "model=cnn"]
    assert rows[0][2] == "3/3"
    assert rows[0][3] == "0.9233 ± 0.0252"  # mean and sd of 0.90, 0.92, 0.95
    low, high = (float(v) for v in rows[0][4].strip("[]").split(", "))
    assert (low + high) / 2 == pytest.approx(0.9233, abs=1e-4)
    assert "`model=rnn` is distinguishable from `model=cnn`" in text
    assert "paired t-test, p = 0.00332" in text
    assert len(_rows(text, "Jobs")) == 6
    assert (sweep_dir / "summary.md").read_text() == text

    table = pd.read_csv(sweep_dir / "summary.csv")
    jobs = table[table["kind"] == "job"]
    assert sorted(jobs["seed"]) == [1, 1, 2, 2, 3, 3]
    configs = table[table["kind"] == "configuration"].set_index("configuration")
    assert list(configs.index) == ["model=rnn", "model=cnn"]
    assert configs.loc["model=cnn", "n"] == 3
    assert configs.loc["model=cnn", "val/acc"] == pytest.approx(0.8233333)
    assert configs.loc["model=cnn", "val/acc:sd"] == pytest.approx(0.0321455, abs=1e-6)
    assert configs.loc["model=rnn", "cost/params"] == 5000
    means = jobs.groupby("configuration")["test/acc"].mean()
    assert means["model=cnn"] == pytest.approx(configs.loc["model=cnn", "test/acc"])


def test_close_configurations_are_not_distinguishable(tmp_path: Path) -> None:
    text = write_report(_sweep(tmp_path / "sweep", CLOSE))
    assert [r[1] for r in _rows(text, "Configurations")] == ["model=rnn", "model=cnn"]
    assert "`model=rnn` is NOT distinguishable from `model=cnn` on `val/acc` at 3 seeds" in text


def test_pictures_are_written_and_linked(tmp_path: Path) -> None:
    sweep_dir = _sweep(tmp_path / "sweep", APART)
    text = write_report(sweep_dir)
    for name in ("summary.png", "cost.png", "curves.png", "f1.png"):
        assert f"]({name})" in text
        with Image.open(sweep_dir / name) as image:
            assert image.format == "PNG" and image.width > 400 and image.height > 200
    for job_dir in sweep_dir.glob("[0-9]*"):  # no event files: no curves to draw
        for events in (job_dir / "tensorboard").iterdir():
            events.unlink()
    text = write_report(sweep_dir)
    assert "curves.png" not in text and not (sweep_dir / "curves.png").exists()
    assert not [p for p in sweep_dir.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


def test_pareto_front_and_class_f1() -> None:
    # (cost, accuracy): the cheapest, then each point better than every cheaper one.
    points = [(1.0, 0.8), (2.0, 0.9), (3.0, 0.85), (0.5, 0.5), (4.0, 0.95)]
    assert pareto_front(points, "max") == [3, 0, 1, 4]
    assert pareto_front([(1.0, 0.3), (2.0, 0.2), (3.0, 0.4)], "min") == [0, 1]
    # Class a: 3 right, 1 missed; class b: 4 right, 1 wrongly claimed.
    assert list(class_f1([[3, 1], [0, 4]])) == pytest.approx([6 / 7, 8 / 9])


def test_split_seeds_are_aggregated_when_asked(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    for number, (seed, split_seed, acc) in enumerate([(1, 0, 0.8), (1, 1, 0.9), (2, 1, 0.7)]):
        overrides = ["model=cnn", f"seed={seed}", f"data.split_seed={split_seed}"]
        _write_job(sweep_dir / str(number), overrides, _metrics(acc), seed, None, split_seed)
    text = write_report(sweep_dir)
    assert [r[1:3] for r in _rows(text, "Configurations")] == [
        ["data.split_seed=0", "1/1"],
        ["data.split_seed=1", "2/2"],
    ]
    text = write_report(sweep_dir, across=("seed", "data.split_seed"))
    assert [r[1:4] for r in _rows(text, "Configurations")] == [
        ["model=cnn", "3/3", "0.8000 ± 0.1000"]
    ]
    result = run_cli("archlab.cli.report", str(sweep_dir), "--across", "seed", "data.seed")
    assert result.returncode == 2 and "invalid choice: 'data.seed'" in result.stderr


def test_directories_of_different_sweeps_are_compared(tmp_path: Path) -> None:
    first = _sweep(tmp_path / "first", {"cnn": (0.80,), "rnn": (0.90,)}, seeds=(1,))
    second = _sweep(tmp_path / "second", {"cnn": (0.82,), "rnn": (0.93,)}, seeds=(2,))
    result = run_cli("archlab.cli.report", str(first), str(second), "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    rows = _rows(result.stdout, "Configurations")
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("model=rnn", "2/2", "0.9150 ± 0.0212"),
        ("model=cnn", "2/2", "0.8100 ± 0.0141"),
    ]
    assert [r[0] for r in _rows(result.stdout, "Jobs")] == [
        "first/1",
        "second/1",
        "first/0",
        "second/0",
    ]
    table = pd.read_csv(tmp_path / "r" / "summary.csv")
    assert list(table["kind"]) == ["job"] * 4 + ["configuration"] * 2
    assert not (first / "summary.md").exists()

    result = run_cli("archlab.cli.report", str(first), str(second))
    assert result.returncode == 2 and "--out" in result.stderr


def test_report_of_a_sweep_with_a_failed_job(sweep: Path) -> None:
    text = write_report(sweep)
    rows = _rows(text, "Configurations")
    assert [r[1] for r in rows] == [
        "model=rnn",
        "model=cnn trainer.max_epochs=2",
        "model=mlp",
        "model=transformer",
    ]
    assert rows[-1][0] == "-" and rows[-1][2] == "0/1"
    assert "cannot be told apart" in text  # one seed each
    table = pd.read_csv(sweep / "summary.csv")
    failed = table[table["status"] == "failed"]
    assert list(failed["kind"]) == ["job", "configuration"]
    assert list(failed["n"]) == [0, 0]
    assert failed["error"].iloc[0] == "RuntimeError: out of memory"


def test_mode_min_orders_ascending(sweep: Path) -> None:
    text = write_report(sweep, target="val/loss", mode="min")
    assert [r[1].split()[0] for r in _rows(text, "Configurations")][:3] == [
        "model=rnn",
        "model=cnn",
        "model=mlp",
    ]
    text = write_report(sweep, target="val/loss", mode="max")
    assert _rows(text, "Configurations")[0][1] == "model=mlp"


def test_unknown_metric_is_refused(sweep: Path) -> None:
    with pytest.raises(DataError, match=r"val/f1.*val/acc"):
        write_report(sweep, target="val/f1")


def test_cli_prints_the_report(sweep: Path) -> None:
    result = run_cli("archlab.cli.report", str(sweep), "--metric", "val/loss", "--mode", "min")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (sweep / "summary.md").read_text()
    assert "ranked by the mean of `val/loss` (min)" in result.stdout


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
