"""The report's pictures, one configuration per colour: the ranking with error bars, the target
against parameters / FLOPs / training time with the Pareto front, validation curves (mean over
seeds, band of one sd) read from the runs' TensorBoard event files, and per-class F1.

Pure matplotlib on the Agg canvas; no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, NullFormatter
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from archlab.atomic import write_atomic
from archlab.records.aggregate import summarise

if TYPE_CHECKING:
    from archlab.records.report import Configuration, JobResult

# What the cost picture sets the target against: metric, axis label.
COST_AXES = (
    ("cost/params", "trainable parameters"),
    ("cost/flops_per_example", "forward FLOPs per example"),
    ("cost/train_time_s", "training wall time (s)"),
)
TENSORBOARD_DIRS = ("tensorboard", "finetune/tensorboard")  # a run's, a pipeline's last stage


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> None:
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=100), binary=True)


def _colors(count: int) -> list[Any]:
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    palette += ["tab:pink", "tab:gray", "tab:olive", "tab:cyan"]
    return [palette[i % len(palette)] for i in range(count)]


def ranking(path: Path, ranked: list[Configuration], target: str | None, mode: str) -> None:
    """Horizontal bars of the mean, best at the top, whiskers of one sd."""
    fig = _figure(8, 1.5 + 0.45 * len(ranked))
    ax = fig.add_subplot()
    stats = [c.stats.get(target) if target else None for c in ranked]
    means = [s.mean if s and s.n else math.nan for s in stats]
    sds = [s.sd if s and s.n > 1 else 0.0 for s in stats]
    positions = range(len(ranked))
    ax.barh(
        positions,
        [0.0 if math.isnan(m) else m for m in means],
        xerr=sds,
        color="tab:blue",
        capsize=3,
    )
    ax.set_yticks(positions, [c.label for c in ranked])
    ax.invert_yaxis()
    for y, (configuration, mean, summary) in enumerate(zip(ranked, means, stats, strict=True)):
        if not configuration.finished:
            note = "failed"
        elif math.isnan(mean):
            note = "n/a"
        else:
            note = f"{mean:.4g} (n={summary.n})"
        ax.annotate(
            note,
            (0 if math.isnan(mean) else mean, y),
            xytext=(3, 8),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax.set_xlabel(f"{target}: mean ± sd over seeds" if target else "no target metric")
    ax.set_title(f"{target} ({mode}), best first" if target else "sweep summary")
    _save(fig, path)


def pareto_front(points: list[tuple[float, float]], mode: str) -> list[int]:
    """Indices of the points no other point beats on both cost (lower) and score (`mode`),
    cheapest first."""
    sign = 1.0 if mode == "max" else -1.0
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -sign * points[i][1]))
    front: list[int] = []
    for i in order:
        if not front or sign * points[i][1] > sign * points[front[-1]][1]:
            front.append(i)
    return front


def cost(path: Path, ranked: list[Configuration], target: str, mode: str) -> bool:
    """The target's mean ± sd against each cost's mean ± sd; False when no run has a cost."""
    axes = [(m, label) for m, label in COST_AXES if any(m in c.stats for c in ranked)]
    if not axes:
        return False
    fig = _figure(5 * len(axes), 4.5)
    colors = _colors(len(ranked))
    for index, (metric, label) in enumerate(axes):
        ax = fig.add_subplot(1, len(axes), index + 1)
        shown = [
            (c, color)
            for c, color in zip(ranked, colors, strict=True)
            if metric in c.stats and target in c.stats and c.stats[target].n
        ]
        points = [(c.stats[metric].mean, c.stats[target].mean) for c, _ in shown]
        for (configuration, color), (x, y) in zip(shown, points, strict=True):
            xs, ys = configuration.stats[metric], configuration.stats[target]
            ax.errorbar(
                x,
                y,
                xerr=0 if math.isnan(xs.sd) else xs.sd,
                yerr=0 if math.isnan(ys.sd) else ys.sd,
                fmt="o",
                color=color,
                capsize=3,
                label=configuration.label,
            )
        front = pareto_front(points, mode)
        ax.plot(
            [points[i][0] for i in front],
            [points[i][1] for i in front],
            "--",
            color="black",
            linewidth=1,
            drawstyle="steps-post",
            label="Pareto front",
            zorder=0,
        )
        ax.scatter(
            [points[i][0] for i in front],
            [points[i][1] for i in front],
            s=160,
            facecolors="none",
            edgecolors="black",
            zorder=3,
        )
        xs = [x for x, _ in points]
        if xs and min(xs) > 0 and max(xs) / min(xs) > 10:  # costs an order of magnitude apart
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 75k, 2.4M: six digits collide
        ax.set_xlabel(label)
        ax.set_ylabel(f"{target} (mean ± sd)")
        ax.grid(alpha=0.3)
        if index == 0:
            ax.legend(fontsize=7)
    fig.suptitle(f"{target} against cost; circled: the Pareto front")
    _save(fig, path)
    return True


def _event_dir(job: JobResult) -> Path | None:
    for name in TENSORBOARD_DIRS:
        folder = job.path / name if job.path else None
        if folder and folder.is_dir() and any(folder.glob("events.out.tfevents.*")):
            return folder
    return None


def read_curve(job: JobResult, tag: str) -> dict[int, float]:
    """{step: value} of one scalar in a job's TensorBoard events (TensorBoard's own reader,
    which also drops the points an interrupted attempt wrote past its checkpoint)."""
    folder = _event_dir(job)
    if folder is None:
        return {}
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    if tag not in events.Tags()["scalars"]:
        return {}
    return {event.step: event.value for event in events.Scalars(tag)}


def curves(path: Path, ranked: list[Configuration], target: str) -> bool:
    """Every configuration's validation curve of `target`: the mean over its seeds at the
    steps they all logged, and a band of one sd. False when no job logged `target`."""
    drawn = []
    for configuration in ranked:
        per_job = [read_curve(job, target) for job in configuration.finished]
        per_job = [c for c in per_job if c]
        if per_job:
            drawn.append((configuration, per_job))
    if not drawn:
        return False
    fig = _figure(8, 4.5)
    ax = fig.add_subplot()
    for (configuration, per_job), color in zip(drawn, _colors(len(drawn)), strict=True):
        steps = sorted(set.intersection(*(set(c) for c in per_job)))
        values = np.array([[c[s] for s in steps] for c in per_job])
        mean = values.mean(0)
        label = f"{configuration.label} (n={len(per_job)})"
        ax.plot(steps, mean, color=color, label=label, marker="." if len(steps) < 30 else None)
        if len(per_job) > 1:
            sd = values.std(0, ddof=1)
            ax.fill_between(steps, mean - sd, mean + sd, color=color, alpha=0.2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(target)
    ax.set_title(f"{target} during training: mean over seeds, band ± 1 sd")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    return True


def class_f1(matrix: list[list[int]]) -> np.ndarray:
    """Per-class F1 of a confusion matrix (rows: true class); 0 for a class never seen."""
    counts = np.asarray(matrix, dtype=np.float64)
    true_positive = np.diag(counts)
    denominator = counts.sum(0) + counts.sum(1)
    return np.divide(
        2 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0
    )


def f1(path: Path, ranked: list[Configuration]) -> bool:
    """Per-class F1 side by side (mean over seeds, whiskers of one sd). False without
    confusion matrices (no classifier among the runs)."""
    drawn = []
    for configuration in ranked:
        matrices = [job.confusion for job in configuration.finished if job.confusion]
        if matrices:
            classes = next(j.classes for j in configuration.finished if j.confusion)
            drawn.append((configuration, classes, np.array([class_f1(m) for m in matrices])))
    if not drawn or len({len(classes) for _, classes, _ in drawn}) != 1:
        return False
    classes = drawn[0][1] or [str(i) for i in range(drawn[0][2].shape[1])]
    fig = _figure(max(6.0, 0.7 * len(classes) * max(1, len(drawn) / 2)), 4.5)
    ax = fig.add_subplot()
    width = 0.8 / len(drawn)
    positions = np.arange(len(classes))
    for i, ((configuration, _, scores), color) in enumerate(
        zip(drawn, _colors(len(drawn)), strict=True)
    ):
        sd = [summarise(list(col)).sd for col in scores.T]
        ax.bar(
            positions + (i - (len(drawn) - 1) / 2) * width,
            scores.mean(0),
            width,
            yerr=[0.0 if math.isnan(s) else s for s in sd],
            color=color,
            capsize=2,
            label=f"{configuration.label} (n={len(scores)})",
        )
    ax.set_xticks(positions, classes, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("F1 (mean ± sd over seeds)")
    ax.set_ylim(0, 1.2)  # room for the legend above the bars
    ax.set_title("per-class F1 on the test split (val when no test)")
    ax.legend(fontsize=8, loc="upper center", ncol=min(len(drawn), 4))
    _save(fig, path)
    return True


def draw_all(
    out: Path, ranked: list[Configuration], target: str | None, mode: str
) -> list[tuple[str, str]]:
    """Draw every picture that the runs have data for; returns (file name, title) of each."""
    drawn = []
    ranking(out / "summary.png", ranked, target, mode)
    drawn.append(("summary.png", "ranking"))
    optional: list[tuple[str, str, Callable[[Path], bool]]] = []
    if target:
        optional += [
            ("cost.png", f"{target} against cost", lambda p: cost(p, ranked, target, mode)),
            ("curves.png", f"{target} during training", lambda p: curves(p, ranked, target)),
        ]
    optional.append(("f1.png", "per-class F1", lambda p: f1(p, ranked)))
    for name, title, draw in optional:
        if draw(out / name):
            drawn.append((name, title))
        else:
            (out / name).unlink(missing_ok=True)  # a stale picture from an earlier report
    return drawn
