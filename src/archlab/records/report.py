"""Summarise a Hydra multirun sweep: one table and one chart to compare its jobs at a glance.

`archlab-train -m ...` leaves one directory per job; this reads each job's overrides and
metrics.json and writes summary.csv, summary.md and summary.png into the sweep directory.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from omegaconf import OmegaConf

from archlab.atomic import write_atomic
from archlab.errors import ArchlabError, DataError
from archlab.records.run_record import ERROR_FILE, METRIC_PREFIXES

MODES = ("max", "min")


@dataclass
class JobResult:
    """What one job of the sweep produced; `error` is set when it left no metrics."""

    name: str
    overrides: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def label(self) -> str:
        """Overrides name a job better than its number; fall back to the number."""
        return " ".join(self.overrides) or f"job {self.name}"


def _job_dirs(sweep_dir: Path) -> list[Path]:
    """Job sub-directories by name (numbered ones by number: `10/` after `9/`)."""
    if not sweep_dir.is_dir():
        raise DataError(f"sweep directory {sweep_dir} does not exist or is not a directory")
    dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if not dirs:
        raise DataError(
            f"{sweep_dir} holds no job directories (one per job, as written by "
            "`archlab-train -m`): pass the sweep directory itself"
        )
    return sorted(dirs, key=lambda p: (0, int(p.name), "") if p.name.isdigit() else (1, 0, p.name))


def _failure_reason(job_dir: Path) -> str:
    """The most specific explanation a failed job left behind."""
    error_file = job_dir / ERROR_FILE
    if error_file.is_file():
        lines = error_file.read_text(errors="replace").splitlines()
        if lines and lines[0].strip():
            return lines[0].strip()
    for log in sorted(job_dir.glob("*.log"), reverse=True):
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            return lines[-1]
    return "no metrics.json"


def _read_job(job_dir: Path) -> JobResult:
    overrides_file = job_dir / ".hydra" / "overrides.yaml"
    overrides = []
    if overrides_file.is_file():
        overrides = [str(o) for o in OmegaConf.load(overrides_file)]
    metrics_file = job_dir / "metrics.json"
    if not metrics_file.is_file():
        return JobResult(job_dir.name, overrides, error=_failure_reason(job_dir))
    try:
        raw = json.loads(metrics_file.read_text())
    except json.JSONDecodeError as error:
        return JobResult(job_dir.name, overrides, error=f"unreadable metrics.json: {error}")
    metrics = {
        k: float(v)
        for k, v in raw.items()
        if k.startswith(METRIC_PREFIXES) and isinstance(v, int | float) and not isinstance(v, bool)
    }
    return JobResult(job_dir.name, overrides, metrics)


def collect(sweep_dir: Path) -> list[JobResult]:
    """One JobResult per job directory of `sweep_dir`."""
    return [_read_job(d) for d in _job_dirs(Path(sweep_dir))]


def _monitor(sweep_dir: Path, jobs: list[JobResult]) -> tuple[str | None, str | None]:
    """The metric and mode the sweep's checkpoints were chosen by: the natural ranking."""
    for job in jobs:
        config_file = sweep_dir / job.name / ".hydra" / "config.yaml"
        if job.ok and config_file.is_file():
            config = OmegaConf.load(config_file)
            return (
                OmegaConf.select(config, "callbacks.checkpoint.monitor"),
                OmegaConf.select(config, "callbacks.checkpoint.mode"),
            )
    return None, None


def _rank(jobs: list[JobResult], target: str | None, mode: str) -> list[JobResult]:
    """Best first by `target`; jobs without a usable value next, failed jobs last."""

    def key(job: JobResult) -> tuple[int, float]:
        value = job.metrics.get(target) if target else None
        if not job.ok:
            return (2, 0.0)
        if value is None or math.isnan(value):
            return (1, 0.0)
        return (0, -value if mode == "max" else value)

    return sorted(jobs, key=key)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(ranked: list[JobResult], columns: list[str]) -> str:
    header = ["rank", "job", "overrides", "status", *columns, "error"]
    rows = [
        [
            str(i) if job.ok else "-",
            job.name,
            _cell(" ".join(job.overrides)),
            "ok" if job.ok else "failed",
            *(f"{job.metrics[c]:.4f}" if c in job.metrics else "" for c in columns),
            _cell(job.error or ""),
        ]
        for i, job in enumerate(ranked, start=1)
    ]
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(row) + " |" for row in lines) + "\n"


def _write_csv(path: Path, jobs: list[JobResult], columns: list[str]) -> None:
    def dump(f: IO[Any]) -> None:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["job", "overrides", "status", *columns, "error"])
        for job in jobs:
            writer.writerow(
                [
                    job.name,
                    " ".join(job.overrides),
                    "ok" if job.ok else "failed",
                    *(job.metrics.get(c, "") for c in columns),
                    job.error or "",
                ]
            )

    write_atomic(path, dump)


def _short_labels(jobs: list[JobResult]) -> list[str]:
    """Each job named by the overrides that tell it apart from the others."""
    common = set.intersection(*(set(job.overrides) for job in jobs)) if jobs else set()
    return [" ".join(o for o in job.overrides if o not in common) or job.label for job in jobs]


def _write_chart(path: Path, ranked: list[JobResult], target: str | None, mode: str) -> None:
    """Horizontal bars, best at the top; jobs without a value get an empty, labelled slot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = [job.metrics.get(target, math.nan) if target else math.nan for job in ranked]
    fig = Figure(figsize=(8, 1.5 + 0.4 * len(ranked)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    positions = range(len(ranked))
    ax.barh(positions, [0.0 if math.isnan(v) else v for v in values], color="tab:blue")
    ax.set_yticks(positions, _short_labels(ranked))
    ax.invert_yaxis()
    for y, (job, value) in enumerate(zip(ranked, values, strict=True)):
        note = "failed" if not job.ok else "n/a" if math.isnan(value) else f"{value:.4g}"
        ax.annotate(
            note,
            (0 if math.isnan(value) else value, y),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax.set_xlabel(target or "no target metric")
    ax.set_title(f"{target} ({mode}), best first" if target else "sweep summary")
    write_atomic(path, lambda f: fig.savefig(f, format="png"), binary=True)


def write_report(sweep_dir: Path, target: str | None = None, mode: str | None = None) -> str:
    """Write summary.csv, summary.md and summary.png into `sweep_dir`; return the table.

    `target` and `mode` default to the checkpoint monitor the jobs were trained with.
    """
    sweep_dir = Path(sweep_dir)
    jobs = collect(sweep_dir)
    monitor, monitor_mode = _monitor(sweep_dir, jobs)
    target = target or monitor
    mode = mode or (monitor_mode if target == monitor else None)
    mode = mode or ("min" if target and "loss" in target else "max")
    if mode not in MODES:
        raise DataError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    columns = sorted({k for job in jobs for k in job.metrics})
    if target and columns and target not in columns:
        raise DataError(
            f"no job in {sweep_dir} reports {target!r}; metrics found: {', '.join(columns)}"
        )
    ranked = _rank(jobs, target, mode)
    table = _markdown(ranked, columns)
    caption = (
        f"Sweep `{sweep_dir}`, ranked by `{target}` ({mode}), best first.\n\n"
        if target
        else f"Sweep `{sweep_dir}`: no finished job names a target metric.\n\n"
    )
    _write_csv(sweep_dir / "summary.csv", jobs, columns)
    write_atomic(sweep_dir / "summary.md", lambda f: f.write(caption + table))
    _write_chart(sweep_dir / "summary.png", ranked, target, mode)
    return table


def finish_sweep(sweep_dir: Path, failed: list[str], total: int) -> None:
    """The end of a multirun, after every job ran: write and print the report; `failed` names
    the jobs that failed, and then the sweep ends with status 1."""
    try:
        print(write_report(sweep_dir))
    except ArchlabError as error:
        print(f"archlab-report: error: {error}", file=sys.stderr)
    if failed:
        print(
            f"archlab-train: error: {len(failed)} of {total} jobs failed ({', '.join(failed)}); "
            f"their errors are in {sweep_dir / 'summary.md'}",
            file=sys.stderr,
        )
        raise SystemExit(1)
