"""Shared helpers: run archlab's real entry points in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one pytest worker per core: in-process torch gets that core, not all of
    # them (oversubscribed threads make short runs several times slower).
    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


def run_cli(
    module: str, *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`python -m <module> args...` as a user would run it; output captured as text.

    Torch gets one thread unless OMP_NUM_THREADS is set: on a small shared CPU box,
    oversubscribed threads make these short runs several times slower.
    """
    env = {"OMP_NUM_THREADS": "1", **os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def train_cli(tmp_path: Path):
    """Runs `archlab-train` with its run directory under tmp_path; returns (result, run_dir)."""

    def run(*overrides: str, run_dir: Path | None = None, timeout: float = 300):
        run_dir = run_dir or tmp_path / "run"
        result = run_cli(
            "archlab.train",
            *overrides,
            f"hydra.run.dir={run_dir}",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            timeout=timeout,
        )
        return result, run_dir

    return run


def assert_accuracy_matches_confusion(metrics: dict, split: str) -> None:
    """A run's recorded `<split>/acc` is the share of its confusion matrix on the diagonal:
    two independent records of one evaluation agree, over a non-empty split."""
    matrix = np.array(metrics["confusion_matrix"][split])
    assert matrix.sum() > 0, f"no {split} example was evaluated"
    assert metrics[f"{split}/acc"] == pytest.approx(np.trace(matrix) / matrix.sum(), abs=1e-6)
