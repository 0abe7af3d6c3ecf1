"""What a finished run leaves behind besides checkpoints: metrics.json and the HParams entry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import TensorBoardLogger

from archlab.atomic import write_atomic

METRICS_FILE = "metrics.json"


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    """Readers never see half a file: see `archlab.atomic`."""

    def dump(f: Any) -> None:
        json.dump(payload, f, indent=2)
        f.write("\n")

    write_atomic(path, dump)


def save_run_config(run_dir: Path, cfg: Any) -> None:
    """Write `.hydra/` (config, Hydra's config, overrides) once the run is known to start.

    archlab sets `hydra.output_subdir: null` so that Hydra does not write these before the
    checks: a refused command leaves an existing run directory untouched.
    """
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    folder = run_dir / ".hydra"
    files = {"config.yaml": cfg}
    if HydraConfig.initialized():
        hydra = HydraConfig.get()
        files |= {
            "hydra.yaml": OmegaConf.create({"hydra": hydra}),
            "overrides.yaml": hydra.overrides.task,
        }
    for name, node in files.items():
        text = OmegaConf.to_yaml(node)
        write_atomic(folder / name, lambda f, text=text: f.write(text))


METRIC_PREFIXES = ("val/", "test/")


def scalar_metrics(
    results: Mapping[str, Any], prefixes: tuple[str, ...] = METRIC_PREFIXES
) -> dict[str, float]:
    """Plain floats for the final metrics among `results` (val/*, test/*), sorted by name."""
    return {k: float(v) for k, v in sorted(results.items()) if k.startswith(prefixes)}


def log_hparams(logger: Any, hparams: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
    """Fill TensorBoard's HParams tab: the run's config beside its final metrics.

    The metrics are logged under `final/` so they never add points to the training curves.
    """
    if isinstance(logger, TensorBoardLogger):
        logger.log_hyperparams(dict(hparams), {f"final/{k}": v for k, v in metrics.items()})
        logger.finalize("success")
