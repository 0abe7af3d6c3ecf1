"""What a default run prints: what it will do (model, sizes, budget, run directory), one line
per epoch when not on a terminal, one table of final metrics, and no library chatter; on a
tiny set, the small-validation rule in one line and the last checkpoint kept."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import run_cli


def _tiny_series(path: Path) -> Path:
    """40 series of 16 steps, two classes (rising vs falling), as a wide CSV."""
    rng = np.random.default_rng(0)
    rows = ["label," + ",".join(f"t{i}" for i in range(16))]
    for i in range(40):
        sign = 1 if i % 2 else -1
        values = sign * np.linspace(-1, 1, 16) + 0.3 * rng.standard_normal(16)
        rows.append(f"{'up' if sign > 0 else 'down'}," + ",".join(f"{v:.4f}" for v in values))
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_default_run_on_a_tiny_set_prints_its_plan_epochs_and_one_table(tmp_path) -> None:
    data = _tiny_series(tmp_path / "series.csv")
    run_dir = tmp_path / "run"
    result = run_cli(
        "archlab.train",
        "data=sequence",
        "data.source=csv",
        f"data.path={data}",
        "model.series=blocks",  # the small CNN: this test is about the console, not accuracy
        "budget.min_examples=300",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    # What it will do, before training: 40 series -> 28 train / 4 val / 8 test.
    assert "archlab-train: cnn on sequence (csv): 28 train / 4 val / 8 test examples" in out
    # 28 examples: batch 8 (the floor), 4 steps per epoch; 300 examples take 11 epochs, but
    # never fewer than budget.min_epochs=20.
    assert "budget: 20 epochs (auto) x 4 steps = 80 optimizer steps, batch 8 (auto)" in out
    assert "val split of 4 examples is too small to choose a checkpoint" in out
    assert f"run directory: {run_dir}" in out
    # Not a terminal: one line per epoch (20 epochs: all of them), no progress bars.
    epochs = re.findall(r"^epoch (\d+)/20: step \d+, .*val/acc", result.stdout, re.M)
    assert epochs == [str(i) for i in range(1, 21)]
    assert "it/s" not in out
    # One table of final metrics, val and test side by side.
    assert out.count("final metrics (last checkpoint):") == 1
    assert re.search(r"^acc\s+\d\.\d{4}\s+\d\.\d{4}$", result.stdout, re.M)
    assert re.search(r"^f1\s+\d\.\d{4}\s+\d\.\d{4}$", result.stdout, re.M)
    # No library chatter.
    for noise in ("Tip", "weights_only", "LeafSpec", "_pytree", "GPU available", "┃"):
        assert noise not in out, noise
    # The whole console fits a screen.
    assert len(out.splitlines()) <= 40, out
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["budget"]["checkpoint"] == "last"
    assert record["budget"]["total_steps"] == 80 and record["global_step"] == 80


def test_real_warnings_still_reach_the_user(tmp_path) -> None:
    """archlab silences named library chatter, not warnings in general."""
    code = (
        "import warnings\n"
        "from archlab.run.console import quiet_libraries\n"
        "quiet_libraries()\n"
        "warnings.warn('a real problem', UserWarning)\n"
        "import logging\n"
        "logging.basicConfig()\n"
        "logging.getLogger('pytorch_lightning.utilities.rank_zero').warning('kept')\n"
        "logging.getLogger('pytorch_lightning.utilities.rank_zero').warning("
        "'GPU available: False')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "a real problem" in done.stderr
    assert "kept" in done.stderr
    assert "GPU available" not in done.stderr
