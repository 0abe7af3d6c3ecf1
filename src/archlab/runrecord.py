"""What a finished run leaves behind besides checkpoints: metrics.json and the HParams entry."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import TensorBoardLogger

METRICS_FILE = "metrics.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def scalar_metrics(results: Mapping[str, Any]) -> dict[str, float]:
    """Plain floats for every metric Lightning returned, sorted by name."""
    return {k: float(v) for k, v in sorted(results.items())}


def log_hparams(logger: Any, hparams: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
    """Fill TensorBoard's HParams tab: the run's config beside its final metrics.

    The metrics are logged under `final/` so they never add points to the training curves.
    """
    if isinstance(logger, TensorBoardLogger):
        logger.log_hyperparams(dict(hparams), {f"final/{k}": v for k, v in metrics.items()})
        logger.finalize("success")
