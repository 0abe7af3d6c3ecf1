"""The files of a run directory besides checkpoints and dashboards: their names, metrics.json and
`.hydra/`. Light (no torch): `archlab-report` reads them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from archlab.atomic import write_atomic
from archlab.config.job import JobContext

METRICS_FILE = "metrics.json"
ERROR_FILE = "error.txt"  # a failed job's error, read by the sweep report
BAD_INPUTS_FILE = "bad_inputs.json"  # inputs left out with data.on_bad=skip: path and reason


def write_json_atomic(path: Path, payload: Mapping[str, Any] | list[Any]) -> None:
    """Readers never see half a file: see `archlab.atomic`."""

    def dump(f: Any) -> None:
        json.dump(payload, f, indent=2)
        f.write("\n")

    write_atomic(path, dump)


def save_run_config(run_dir: Path, cfg: Any, job: JobContext) -> None:
    """Write `.hydra/` (config, Hydra's config, overrides) once the run is known to start.

    archlab sets `hydra.output_subdir: null` so that Hydra does not write these before the
    checks: a refused command leaves an existing run directory untouched.
    """
    files = {"config.yaml": cfg}
    if job.hydra is not None:
        files |= {
            "hydra.yaml": OmegaConf.create({"hydra": job.hydra}),
            "overrides.yaml": OmegaConf.create(list(job.overrides)),
        }
    for name, node in files.items():
        text = OmegaConf.to_yaml(node)
        write_atomic(run_dir / ".hydra" / name, lambda f, text=text: f.write(text))


METRIC_PREFIXES = ("val/", "test/")


def scalar_metrics(
    results: Mapping[str, Any], prefixes: tuple[str, ...] = METRIC_PREFIXES
) -> dict[str, float]:
    """Plain floats for the final metrics among `results` (val/*, test/*), sorted by name."""
    return {k: float(v) for k, v in sorted(results.items()) if k.startswith(prefixes)}
