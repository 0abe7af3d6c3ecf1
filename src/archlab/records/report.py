"""Compare the jobs of one or more sweeps the way a paper would: jobs that differ only in their
seed are one configuration, summarised over seeds (see `archlab.records.aggregate`), ranked by
the mean, set against their cost, and drawn.

`archlab-train -m ...` leaves one directory per job; this reads each job's overrides,
metrics.json and TensorBoard curves and writes summary.md, summary.csv (one row per job and one
per configuration) and the pictures (summary.png, cost.png, curves.png, f1.png). Light: no torch.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from omegaconf import OmegaConf

from archlab.atomic import write_atomic
from archlab.errors import ArchlabError, DataError
from archlab.records import report_figures
from archlab.records.aggregate import Comparison, Summary, compare, summarise
from archlab.records.run_record import ERROR_FILE, METRIC_PREFIXES, METRICS_FILE

MODES = ("max", "min")
SEED_KEYS = ("seed", "data.split_seed")  # what `across` may name
COST_PREFIX = "cost/"
# The cost columns of the configuration table: metric, heading, format.
COST_COLUMNS = (
    ("cost/params", "params", "si"),
    ("cost/flops_per_example", "FLOPs/example", "si"),
    ("cost/train_time_s", "train time (s)", ".1f"),
    ("cost/throughput_examples_per_s", "train examples/s", "si"),
    ("cost/latency_batch1_ms", "latency b=1 (ms/ex)", ".3g"),
    ("cost/latency_eval_batch_ms", "latency eval batch (ms/ex)", ".3g"),
    ("cost/peak_memory_mb", "peak memory (MiB)", ".0f"),
)


@dataclass
class JobResult:
    """What one job produced; `error` is set when it left no metrics."""

    name: str
    overrides: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    path: Path | None = None
    seeds: dict[str, Any] = field(default_factory=dict)  # seed, data.split_seed
    classes: list[str] = field(default_factory=list)
    confusion: list[list[int]] | None = None  # test split's, else val's

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Configuration:
    """Jobs that differ only in the seeds aggregated over."""

    overrides: tuple[str, ...]
    jobs: list[JobResult]
    label: str = ""
    stats: dict[str, Summary] = field(default_factory=dict)

    @property
    def finished(self) -> list[JobResult]:
        return [job for job in self.jobs if job.ok]

    def values(self, metric: str, across: Sequence[str]) -> dict[tuple, float]:
        """The finished jobs' values of `metric`, keyed by their seeds."""
        return {
            tuple(job.seeds.get(k) for k in across): job.metrics[metric]
            for job in self.finished
            if not math.isnan(job.metrics.get(metric, math.nan))
        }


def _job_dirs(sweep_dir: Path) -> list[Path]:
    """Job sub-directories by name (numbered ones by number: `10/` after `9/`); a run directory
    given itself is its own job."""
    if not sweep_dir.is_dir():
        raise DataError(f"sweep directory {sweep_dir} does not exist or is not a directory")
    if (sweep_dir / METRICS_FILE).is_file() or (sweep_dir / ".hydra" / "config.yaml").is_file():
        return [sweep_dir]
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


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _read_job(job_dir: Path, name: str) -> JobResult:
    overrides_file = job_dir / ".hydra" / "overrides.yaml"
    overrides = []
    if overrides_file.is_file():
        overrides = [str(o) for o in OmegaConf.load(overrides_file)]
    config_file = job_dir / ".hydra" / "config.yaml"
    config = OmegaConf.load(config_file) if config_file.is_file() else OmegaConf.create()
    seeds = {k: OmegaConf.select(config, k) for k in SEED_KEYS}
    result = JobResult(name, overrides, path=job_dir, seeds=seeds)
    metrics_file = job_dir / METRICS_FILE
    if not metrics_file.is_file():
        result.error = _failure_reason(job_dir)
        return result
    try:
        raw = json.loads(metrics_file.read_text())
    except json.JSONDecodeError as error:
        result.error = f"unreadable metrics.json: {error}"
        return result
    result.metrics = {
        k: float(v) for k, v in raw.items() if k.startswith(METRIC_PREFIXES) and _number(v)
    }
    cost = raw.get("cost") or {}
    result.metrics |= {COST_PREFIX + k: float(v) for k, v in cost.items() if _number(v)}
    result.classes = [str(c) for c in raw.get("classes") or []]
    matrices = raw.get("confusion_matrix") or {}
    if isinstance(matrices, dict):
        result.confusion = matrices.get("test") or matrices.get("val")
    return result


def collect(*dirs: Path) -> list[JobResult]:
    """One JobResult per job directory of each of `dirs` (sweep or run directories). With
    several directories, jobs are named by their path below the directories' common parent."""
    dirs = tuple(Path(d) for d in dirs)
    found = [job_dir for d in dirs for job_dir in _job_dirs(d)]
    if len(dirs) == 1 and found != [dirs[0]]:
        return [_read_job(job_dir, job_dir.name) for job_dir in found]
    common = Path(os.path.commonpath([d.resolve().parent for d in dirs]))
    return [_read_job(d, str(d.resolve().relative_to(common))) for d in found]


def _monitor(jobs: list[JobResult]) -> tuple[str | None, str | None]:
    """The metric and mode the jobs' checkpoints were chosen by: the natural ranking."""
    for job in jobs:
        config_file = job.path / ".hydra" / "config.yaml" if job.path else None
        if job.ok and config_file and config_file.is_file():
            config = OmegaConf.load(config_file)
            return (
                OmegaConf.select(config, "callbacks.checkpoint.monitor"),
                OmegaConf.select(config, "callbacks.checkpoint.mode"),
            )
    return None, None


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _short_labels(groups: list[tuple[str, ...]]) -> list[str]:
    """Each group named by the overrides that tell it apart from the others."""
    common = set.intersection(*(set(g) for g in groups)) if len(groups) > 1 else set()
    return [" ".join(o for o in g if o not in common) or " ".join(g) or "defaults" for g in groups]


def group(jobs: list[JobResult], across: Sequence[str] = ("seed",)) -> list[Configuration]:
    """Jobs that differ only in the settings named by `across`, as configurations."""
    configurations: dict[tuple[str, ...], Configuration] = {}
    for job in jobs:
        key = tuple(o for o in job.overrides if _override_key(o) not in across)
        configurations.setdefault(key, Configuration(key, [])).jobs.append(job)
    found = list(configurations.values())
    labels = _short_labels([c.overrides for c in found])
    for configuration, label in zip(found, labels, strict=True):
        configuration.label = label
        metrics = {k for job in configuration.finished for k in job.metrics}
        configuration.stats = {
            m: summarise(list(configuration.values(m, across).values())) for m in sorted(metrics)
        }
    return found


def _rank(
    configurations: list[Configuration], target: str | None, mode: str
) -> list[Configuration]:
    """Best mean first; configurations without a usable value next, failed ones last."""

    def key(configuration: Configuration) -> tuple[int, float]:
        summary = configuration.stats.get(target) if target else None
        if not configuration.finished:
            return (2, 0.0)
        if summary is None or math.isnan(summary.mean):
            return (1, 0.0)
        return (0, -summary.mean if mode == "max" else summary.mean)

    return sorted(configurations, key=key)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _format(value: float, spec: str) -> str:
    if math.isnan(value):
        return ""
    if spec != "si":
        return format(value, spec)
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def _mean_sd(summary: Summary | None) -> str:
    if summary is None or summary.n == 0:
        return ""
    return f"{summary.mean:.4f}" + ("" if math.isnan(summary.sd) else f" ± {summary.sd:.4f}")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(row) + " |" for row in lines) + "\n"


def _configuration_table(
    ranked: list[Configuration], target: str | None, metrics: list[str]
) -> str:
    others = [m for m in metrics if m != target and not m.startswith(COST_PREFIX)]
    firsts = [target] if target else []
    header = ["rank", "configuration", "seeds", *firsts]
    header += ["95% interval"] if target else []
    header += [*others, *(title for _, title, _ in COST_COLUMNS)]
    rows = []
    for i, configuration in enumerate(ranked, start=1):
        stats = configuration.stats
        summary = stats.get(target) if target else None
        row = [
            str(i) if configuration.finished else "-",
            _cell(configuration.label),
            f"{len(configuration.finished)}/{len(configuration.jobs)}",
        ]
        if target:
            interval = (
                f"[{summary.low:.4f}, {summary.high:.4f}]"
                if summary and not math.isnan(summary.low)
                else ""
            )
            row += [_mean_sd(summary), interval]
        row += [_mean_sd(stats.get(m)) for m in others]
        row += [_format(stats[m].mean, spec) if m in stats else "" for m, _, spec in COST_COLUMNS]
        rows.append(row)
    return _table(header, rows)


def _jobs_table(configurations: list[Configuration], columns: list[str]) -> str:
    header = ["job", "configuration", "seed", "status", *columns, "error"]
    rows = [
        [
            _cell(job.name),
            _cell(configuration.label),
            str(job.seeds.get("seed", "")),
            "ok" if job.ok else "failed",
            *(f"{job.metrics[c]:.4f}" if c in job.metrics else "" for c in columns),
            _cell(job.error or ""),
        ]
        for configuration in configurations
        for job in configuration.jobs
    ]
    return _table(header, rows)


def _verdict(ranked: list[Configuration], target: str | None, across: Sequence[str]) -> str:
    contenders = [c for c in ranked if target and c.stats.get(target) and c.stats[target].n]
    if len(contenders) < 2:
        return ""
    best, second = contenders[:2]
    result: Comparison = compare(best.values(target, across), second.values(target, across))
    return result.sentence(best.label, second.label, target) + "\n"


def _number_cell(stats: dict[str, Summary], metric: str, attribute: str) -> Any:
    value = getattr(stats[metric], attribute) if metric in stats else math.nan
    return "" if math.isnan(value) else value


def _write_csv(path: Path, ranked: list[Configuration], metrics: list[str], sources: str) -> None:
    """One table for pandas: `kind` is job or configuration; a configuration's row holds
    means in the metric columns and its sd and interval in `<metric>:sd|ci95_low|ci95_high`."""
    extra = [f"{m}:{s}" for m in metrics for s in ("sd", "ci95_low", "ci95_high")]
    header = ["kind", "source", "job", "configuration", "overrides", "seed", "split_seed"]
    header += ["status", "n", *metrics, *extra, "error"]

    def dump(f: IO[Any]) -> None:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for configuration in ranked:
            for job in configuration.jobs:
                writer.writerow(
                    [
                        "job",
                        sources,
                        job.name,
                        configuration.label,
                        " ".join(job.overrides),
                        job.seeds.get("seed", ""),
                        job.seeds.get("data.split_seed", ""),
                        "ok" if job.ok else "failed",
                        1 if job.ok else 0,
                        *(job.metrics.get(m, "") for m in metrics),
                        *([""] * len(extra)),
                        job.error or "",
                    ]
                )
        for configuration in ranked:
            stats = configuration.stats
            writer.writerow(
                [
                    "configuration",
                    sources,
                    "",
                    configuration.label,
                    " ".join(configuration.overrides),
                    "",
                    "",
                    "ok" if configuration.finished else "failed",
                    len(configuration.finished),
                    *(_number_cell(stats, m, "mean") for m in metrics),
                    *(_number_cell(stats, m, a) for m in metrics for a in ("sd", "low", "high")),
                    "",
                ]
            )

    write_atomic(path, dump)


def write_report(
    dirs: Path | Sequence[Path],
    target: str | None = None,
    mode: str | None = None,
    out: Path | None = None,
    across: Sequence[str] = ("seed",),
) -> str:
    """Write summary.md, summary.csv and the pictures into `out` (default: the one directory
    given); return summary.md's text. `target` and `mode` default to the checkpoint monitor
    the jobs were trained with; `across`: the settings whose values are aggregated over."""
    dirs = [Path(dirs)] if isinstance(dirs, str | Path) else [Path(d) for d in dirs]
    if out is None and len(dirs) > 1:
        raise DataError("several directories are compared into one report: name it with --out DIR")
    unknown = [k for k in across if k not in SEED_KEYS]
    if unknown:
        raise DataError(f"can aggregate across {', '.join(SEED_KEYS)} only, not {unknown[0]!r}")
    out = Path(out or dirs[0])
    jobs = collect(*dirs)
    monitor, monitor_mode = _monitor(jobs)
    target = target or monitor
    mode = mode or (monitor_mode if target == monitor else None)
    mode = mode or ("min" if target and "loss" in target else "max")
    if mode not in MODES:
        raise DataError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    metrics = sorted({k for job in jobs for k in job.metrics})
    if target and metrics and target not in metrics:
        raise DataError(
            f"no job in {', '.join(map(str, dirs))} reports {target!r}; metrics found: "
            f"{', '.join(m for m in metrics if not m.startswith(COST_PREFIX))}"
        )
    ranked = _rank(group(jobs, across), target, mode)
    out.mkdir(parents=True, exist_ok=True)
    pictures = report_figures.draw_all(out, ranked, target, mode)
    sources = " ".join(map(str, dirs))
    finished = sum(job.ok for job in jobs)
    lines = [
        f"# Report: {sources}\n",
        f"{len(jobs)} jobs ({len(jobs) - finished} failed) in {len(ranked)} configurations, "
        + (f"ranked by the mean of `{target}` ({mode}), best first." if target else "no target.")
        + f" Aggregated over {', '.join(f'`{k}`' for k in across)}: mean ± sd, 95% interval "
        "of the mean (Student's t); costs are means (see README, Comparing architectures).\n",
        "## Configurations\n",
        _configuration_table(ranked, target, metrics),
        _verdict(ranked, target, across),
        "## Pictures\n",
        *(f"![{title}]({name})\n" for name, title in pictures),
        "## Jobs\n",
        _jobs_table(ranked, [m for m in metrics if not m.startswith(COST_PREFIX)]),
    ]
    text = "\n".join(line for line in lines if line)
    _write_csv(out / "summary.csv", ranked, metrics, sources)
    write_atomic(out / "summary.md", lambda f: f.write(text))
    return text


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
