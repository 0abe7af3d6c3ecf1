"""`archlab-train -m experiment=compare`, shrunk to 2 models x 2 seeds with tiny budgets: every
job records its cost, and the sweep ends with the aggregated report and all its pictures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

COST_FIELDS = {
    "params",
    "flops_per_example",
    "train_time_s",
    "optimizer_steps",
    "train_examples",
    "throughput_examples_per_s",
    "peak_memory_mb",
    "peak_memory_kind",
    "latency_batch1_ms",
    "latency_eval_batch_ms",
    "eval_batch_size",
}


@pytest.mark.slow  # four trainings: ~25 s of CPU, over a minute on a loaded 2-core box
def test_compare_sweep_writes_every_file(tmp_path: Path) -> None:
    result = run_cli(
        "archlab.train",
        "-m",
        "experiment=compare",
        "hydra.sweeper.params.model='cnn,rnn'",  # the experiment's three, cut to two
        "hydra.sweeper.params.seed='1,2'",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=4",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "outputs" / "multiruns").iterdir()
    job_dirs = [d for d in sweep_dir.iterdir() if (d / "metrics.json").is_file()]
    assert len(job_dirs) == 4
    for job_dir in job_dirs:
        cost = json.loads((job_dir / "metrics.json").read_text())["cost"]
        assert set(cost) == COST_FIELDS
        assert cost["optimizer_steps"] == 8 and cost["train_examples"] == 8 * 64
        events = EventAccumulator(str(job_dir / "tensorboard"))
        events.Reload()
        assert events.Scalars("cost/flops_per_example")[0].value == cost["flops_per_example"]
        assert len(events.Scalars("val/acc")) == 2  # the curve the report draws

    summary = (sweep_dir / "summary.md").read_text()
    assert summary in result.stdout
    for name in ("summary.png", "cost.png", "curves.png", "f1.png"):
        assert f"]({name})" in summary
        with Image.open(sweep_dir / name) as image:
            assert image.format == "PNG"
    assert "at 2 seeds (paired t-test" in summary
    table = pd.read_csv(sweep_dir / "summary.csv")
    configs = table[table["kind"] == "configuration"].set_index("configuration")
    assert sorted(configs.index) == ["model=cnn", "model=rnn"]
    assert list(configs["n"]) == [2, 2]
    jobs = table[table["kind"] == "job"]
    for name, rows in jobs.groupby("configuration"):
        assert configs.loc[name, "val/acc"] == pytest.approx(rows["val/acc"].mean())
        assert configs.loc[name, "val/acc:sd"] == pytest.approx(rows["val/acc"].std())
    # The RNN has more parameters and FLOPs than the CNN at these sizes, identical over seeds.
    assert configs.loc["model=rnn", "cost/params"] > configs.loc["model=cnn", "cost/params"]
    assert configs.loc["model=cnn", "cost/params:sd"] == 0
