"""Does pretraining help when labels are scarce? For each modality's shipped transfer
experiment (conf/experiment/transfer_<modality>.yaml), the test metric of a model finetuned
from its pretrained stem + backbone against the same model trained from scratch on the same
labelled subset, with the same finetune budget (epochs, optimizer, schedule) and the same seeds.

Every run goes through archlab's own entry (`run_stages`, as `archlab-train` does, in this
process to save a start-up per run). Per modality, the experiment's pretrain stage runs once
(`stage=pretrain`, seed = the first seed, on every training input), as a user would pretrain
once and reuse the checkpoint. Then, for each seed s, the pretrained side runs the finetune
stage from it (`stage=finetune finetune.init_from=...`, seed s) and the scratch side the same
experiment as a single classification run (`stages=[]`, seed s): same labelled subset, model,
epochs, optimizer and schedule. The table gives the mean and standard deviation over the
seeds (3 by default) of test accuracy and macro-F1, and the wall times.

    make bench-transfer                     # or: python -m bench.transfer --seeds 0 1 2
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

from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.run.stages import run_stages

MODALITIES = ("text", "sequence", "image")
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


def _run(overrides: list[str], run_dir: Path) -> tuple[dict[str, float], float]:
    cfg = validate(compose_config("train", [*overrides, *QUIET]))
    start = time.perf_counter()
    with _silenced():
        run_stages(cfg, run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return metrics, time.perf_counter() - start


def _stats(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.transfer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--modalities", nargs="+", choices=MODALITIES, default=list(MODALITIES))
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temp folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="archlab-transfer-"))
    rows = []
    for modality in args.modalities:
        experiment = f"experiment=transfer_{modality}"
        cfg = validate(compose_config("train", [experiment]))
        pretrained = out / modality / "pretrain"
        _, pretrain_seconds = _run(
            [experiment, "stage=pretrain", f"seed={args.seeds[0]}"], pretrained
        )
        print(f"{modality} pretrain: {pretrain_seconds:.0f} s", flush=True)
        sides = {
            "scratch": ["stages=[]"],
            "pretrained": ["stage=finetune", f"finetune.init_from={pretrained}"],
        }
        results: dict[str, dict[str, list[float]]] = {side: {} for side in sides}
        seconds = dict.fromkeys(sides, 0.0)
        for seed in args.seeds:
            for side, extra in sides.items():
                metrics, took = _run(
                    [experiment, f"seed={seed}", *extra], out / modality / side / str(seed)
                )
                seconds[side] += took
                for key in ("test/acc", "test/f1"):
                    results[side].setdefault(key, []).append(metrics[key])
                print(
                    f"{modality} seed {seed} {side:>10}: test/acc {metrics['test/acc']:.3f} "
                    f"({took:.0f} s)",
                    flush=True,
                )
        gain = statistics.mean(results["pretrained"]["test/acc"]) - statistics.mean(
            results["scratch"]["test/acc"]
        )
        rows.append(
            f"| {modality} | {cfg.model.name} + {cfg.pretrain.task.name} | "
            f"{cfg.data.label_fraction:.0%} | {_stats(results['scratch']['test/acc'])} | "
            f"{_stats(results['pretrained']['test/acc'])} | {gain:+.3f} | "
            f"{_stats(results['scratch']['test/f1'])} | {_stats(results['pretrained']['test/f1'])}"
            f" | {pretrain_seconds:.0f} s | {seconds['scratch']:.0f} s / "
            f"{seconds['pretrained']:.0f} s |"
        )
    print(
        f"\nfinetune seeds {args.seeds}, one pretraining per modality (seed {args.seeds[0]}); "
        f"runs in {out}\n"
    )
    print(
        "| modality | model + pretraining | labels | test acc, scratch | test acc, pretrained "
        "| gain | test F1, scratch | test F1, pretrained | pretraining | scratch / finetune, "
        "all seeds |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
