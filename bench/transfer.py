"""Label efficiency: does pretraining on a large unlabelled corpus pay when labels are scarce?

For each modality's shipped experiment (conf/experiment/transfer_<modality>.yaml), the
pretrain stage runs once (`stage=pretrain`, seed 0) on that experiment's built-in unlabelled
corpus (text: python_docs; image and sequence: generated glyphs). Then, at 1%, 5%, 10% and
100% of the training labels and for each seed, the same classifier is trained from scratch
(`stages=[]`) and finetuned from the pretrained checkpoint (`stage=finetune
finetune.init_from=...`): same labelled subset, model, optimizer, schedule and budget (the
experiment's `trainer.max_epochs` at every fraction, the checkpoint chosen on val). On text,
TF-IDF + logistic regression on the same labelled subset is the baseline a pretraining text
pipeline must beat. The budgets were sized once for wall time on a shared 2-core machine.

    make bench-transfer                        # all three modalities, seeds 0 1 2
    python -m bench.transfer --modalities text --out runs/  # one modality (results kept in runs/)
    python -m bench.transfer --report --out runs/           # table + plot of what runs/ holds

Every run goes through archlab's own entry (`run_stages`, as `archlab-train` does), in this
process to save a start-up per run, in <out>/<modality>/<side>/<fraction>-<seed>/. The table
is made from the finished runs found there (an interrupted bench reports what it ran) and
the plot written to <out>/transfer_curve.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from archlab.config.job import JobContext
from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.data import build_datamodule
from archlab.data.splits import split_off
from archlab.run.stages import run_stages, stage_config

MODALITIES = ("text", "sequence", "image")
FRACTIONS = (0.01, 0.05, 0.1, 1.0)
QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


@contextmanager
def _silenced() -> Iterator[None]:
    """Lightning's console output goes to /dev/null, so that the table stays readable."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)


def _run(overrides: list[str], run_dir: Path) -> tuple[dict, float]:
    cfg = validate(compose_config("train", [*overrides, *QUIET]))
    start = time.perf_counter()
    with _silenced():
        run_stages(cfg, JobContext(run_dir=run_dir))
    return json.loads((run_dir / "metrics.json").read_text()), time.perf_counter() - start


def _tfidf(experiment: str, fraction: float) -> dict[str, float]:
    """TF-IDF (word 1-2 grams) + logistic regression on the labelled subset archlab trains on."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    cfg = stage_config(validate(compose_config("train", [experiment])), None)
    datamodule = build_datamodule(cfg.data)
    raw = datamodule._complete(datamodule.read())  # the splits setup() makes, before tokens
    train = raw["train"]
    if fraction < 1:  # as ArrayDataModule.setup keeps labels
        keep, _ = split_off(len(train.labels), 1 - fraction, train.labels, cfg.data.split_seed)
        train = train.take(np.sort(keep))
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    model = LogisticRegression(max_iter=2000, C=10.0)
    model.fit(vectorizer.fit_transform(train.inputs), train.labels)
    predicted = model.predict(vectorizer.transform(raw["test"].inputs))
    truth = raw["test"].labels
    return {
        "test/acc": float(accuracy_score(truth, predicted)),
        "test/f1": float(f1_score(truth, predicted, average="macro")),
        "labelled": len(train.labels),
    }


def bench_modality(
    modality: str,
    seeds: list[int],
    out: Path,
    fractions: list[float] = FRACTIONS,
    pretrain_overrides: list[str] = (),
) -> None:
    """Pretrain once, then scratch vs pretrained at each label fraction and seed."""
    experiment = f"experiment=transfer_{modality}"
    pretrained = out / modality / "pretrain"
    metrics, pretrain_seconds = _run(
        [experiment, "stage=pretrain", "seed=0", *pretrain_overrides], pretrained
    )
    print(f"{modality} pretrain: {pretrain_seconds:.0f} s, {metrics}", flush=True)
    sides = {
        "scratch": ["stages=[]"],
        "pretrained": ["stage=finetune", f"finetune.init_from={pretrained}"],
    }
    for fraction in fractions:
        for seed in seeds:
            for side, extra in sides.items():
                overrides = [experiment, f"data.label_fraction={fraction}", f"seed={seed}"]
                run_dir = out / modality / side / f"{fraction}-{seed}"
                metrics, took = _run([*overrides, *extra], run_dir)
                print(
                    f"{modality} {fraction:.0%} seed {seed} {side:>10}: "
                    f"test/acc {metrics['test/acc']:.3f} ({took:.0f} s)",
                    flush=True,
                )


def _cell(runs: list[dict], key: str) -> str:
    values = [r[key] for r in runs]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def _collect(out: Path, modality: str) -> dict:
    """Every finished run under <out>/<modality>/ (an interrupted bench reports what it ran)."""
    runs = []
    for side in ("scratch", "pretrained"):
        for record in sorted((out / modality / side).glob("*/metrics.json")):
            fraction, seed = record.parent.name.split("-")
            metrics = json.loads(record.read_text())
            runs.append(
                {"side": side, "fraction": float(fraction), "seed": int(seed)}
                | {k: metrics[k] for k in ("test/acc", "test/f1")}
            )
    if modality == "text" and runs:
        for fraction in sorted({r["fraction"] for r in runs}):
            baseline = _tfidf(f"experiment=transfer_{modality}", fraction)
            runs.append({"side": "tfidf", "fraction": fraction, "seed": None, **baseline})
    pretrain = out / modality / "pretrain" / "metrics.json"
    return {
        "runs": runs,
        "pretrain": json.loads(pretrain.read_text()) if pretrain.is_file() else {},
    }


def report(out: Path) -> None:
    """The table (markdown) of every finished run under <out>, and the plot."""
    results = {m: _collect(out, m) for m in MODALITIES if (out / m).is_dir()}
    results = {m: result for m, result in results.items() if result["runs"]}
    print(
        "| modality | labels | test acc, scratch | test acc, pretrained | gain | "
        "test F1, scratch | test F1, pretrained | TF-IDF + logistic regression (acc / F1) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for modality, result in results.items():
        for fraction in FRACTIONS:
            side = {
                s: [r for r in result["runs"] if r["side"] == s and r["fraction"] == fraction]
                for s in ("scratch", "pretrained", "tfidf")
            }
            if not side["scratch"] or not side["pretrained"]:
                continue
            gain = statistics.mean(r["test/acc"] for r in side["pretrained"]) - statistics.mean(
                r["test/acc"] for r in side["scratch"]
            )
            tfidf = (
                f"{side['tfidf'][0]['test/acc']:.3f} / {side['tfidf'][0]['test/f1']:.3f} "
                f"({side['tfidf'][0]['labelled']} labelled)"
                if side["tfidf"]
                else "-"
            )
            seeds = len(side["pretrained"])
            print(
                f"| {modality} | {fraction:.0%} | {_cell(side['scratch'], 'test/acc')} | "
                f"{_cell(side['pretrained'], 'test/acc')} | {gain:+.3f} | "
                f"{_cell(side['scratch'], 'test/f1')} | {_cell(side['pretrained'], 'test/f1')} | "
                f"{tfidf} |" + ("" if seeds == 3 else f" ({seeds} seed(s))")
            )
    for modality, result in results.items():
        print(f"{modality} pretraining: {result['pretrain']}")
    _plot(results, out / "transfer_curve.png")


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.4), squeeze=False)
    styles = {"scratch": ("tab:gray", "from scratch"), "pretrained": ("tab:blue", "pretrained")}
    styles["tfidf"] = ("tab:orange", "TF-IDF + logistic regression")
    for ax, (modality, result) in zip(axes[0], results.items(), strict=True):
        for side, (colour, label) in styles.items():
            xs, means, sds = [], [], []
            for fraction in FRACTIONS:
                values = [
                    r["test/acc"]
                    for r in result["runs"]
                    if r["side"] == side and r["fraction"] == fraction
                ]
                if values:
                    xs.append(fraction * 100)
                    means.append(statistics.mean(values))
                    sds.append(statistics.stdev(values) if len(values) > 1 else 0.0)
            if xs:
                ax.errorbar(xs, means, yerr=sds, color=colour, label=label, marker="o", capsize=3)
        ax.set_xscale("log")
        ax.set_xticks([1, 5, 10, 100], ["1%", "5%", "10%", "100%"])
        ax.set_xlabel("share of the training labels")
        ax.set_ylabel("test accuracy")
        ax.set_title(modality)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.transfer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--modalities", nargs="+", choices=MODALITIES, default=list(MODALITIES))
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temp folder)")
    parser.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    parser.add_argument(
        "--pretrain-overrides",
        nargs="*",
        default=[],
        help="a smaller pretraining, e.g. "
        "pretrain.data.max_examples=20000 pretrain.trainer.max_steps=500 (say so with the results)",
    )
    parser.add_argument("--report", action="store_true", help="only tabulate and plot --out")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="archlab-transfer-"))
    out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        start = time.perf_counter()
        for modality in args.modalities:
            bench_modality(modality, args.seeds, out, args.fractions, args.pretrain_overrides)
        print(f"\n{time.perf_counter() - start:.0f} s in all; runs in {out}\n")
    report(out)


if __name__ == "__main__":
    main()
