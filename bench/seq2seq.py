"""Which encoder-decoder learns the built-in dates task (human-written dates in five languages
-> ISO dates, `data=pairs task=translate`)? Each architecture trains through `archlab-train`
with the same budget (examples, epochs, wall-time cap, optimizer, seed); then its chosen
checkpoint translates the test split with greedy and with beam search, timed.

The budget was sized once for this machine (2 shared cores) and is not tuned per model:
every model gets BUDGET_OVERRIDES and stops at whichever of its epoch count or its wall-time
cap comes first.

    make bench-seq2seq                       # or: python -m bench.seq2seq --out /tmp/s2s
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from archlab.checkpointing.files import find_checkpoint, load_checkpoint
from archlab.config.validate import validate
from archlab.data import build_datamodule
from archlab.models.decoding import beam_search, greedy
from archlab.tasks.build import build_task
from archlab.tasks.translate import TranslationMetrics

ARCHITECTURES = {
    "transformer": ["model=transformer", "model.dropout=0.0"],
    "rnn (attention)": ["model=rnn"],
    "rnn (no attention)": ["model=rnn", "model.attention=false"],
    "cnn + attention decoder": ["model=cnn", "model.dropout=0.0"],
}
BUDGET_OVERRIDES = [
    "data=pairs",
    "task=translate",
    "data.num_examples=10000",
    "data.val_fraction=0.05",
    "data.test_fraction=0.1",
    "trainer.max_epochs=40",
    "trainer.max_time=00:00:09:00",
    "logger=none",
    "seed=0",
]
BEAM_SIZE = 4
QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def _train(overrides: list[str], run_dir: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "archlab.train", *overrides, *QUIET, f"hydra.run.dir={run_dir}"],
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise SystemExit(f"training failed in {run_dir}:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def _decode(task, data, search: str) -> dict[str, float]:
    """Exact match, BLEU, chrF and sources per second on the test split."""
    source, target = data.tensors["test"]
    metrics = TranslationMetrics()
    start = time.perf_counter()
    for i in range(0, len(source), 500):
        src = source[i : i + 500]
        if search == "greedy":
            out = greedy(task.model, src, data.bos_id, data.eos_id, data.target_length - 1)[0]
        else:
            alpha = task.task_cfg["length_penalty"]
            args = (data.bos_id, data.eos_id, data.target_length - 1, BEAM_SIZE, alpha)
            out = beam_search(task.model, src, *args)[0]
        outputs = [data.decode_target(ids) for ids in out.tolist()]
        metrics.update(outputs, [data.decode_target(ids) for ids in target[i : i + 500].tolist()])
    seconds = time.perf_counter() - start
    values = {k: float(v) for k, v in metrics.compute().items()}
    return {**values, "per_second": len(source) / seconds}


def _evaluate(run_dir: Path) -> dict[str, dict[str, float]]:
    checkpoint = load_checkpoint(find_checkpoint(run_dir))
    cfg = validate(OmegaConf.create(checkpoint["hyper_parameters"]))
    data = build_datamodule(cfg.data)
    data.load_state_dict(checkpoint[type(data).__qualname__])
    data.setup("test")
    task = build_task(cfg, data, checkpoint["hyper_parameters"])
    task.load_state_dict(checkpoint["state_dict"])
    task.eval()
    return {search: _decode(task, data, search) for search in ("greedy", "beam")}


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.seq2seq", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temp folder)")
    parser.add_argument("--only", nargs="+", choices=list(ARCHITECTURES), default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="archlab-seq2seq-"))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    rows = {}
    for name in args.only or list(ARCHITECTURES):
        run_dir = out / name.split()[0] / ("no-attention" if "no attention" in name else "run")
        wall = _train([*BUDGET_OVERRIDES, *ARCHITECTURES[name]], run_dir)
        recorded = json.loads((run_dir / "metrics.json").read_text())
        rows[name] = {"wall_s": wall, "epochs": recorded["epochs"], **_evaluate(run_dir)}
        print(name, json.dumps(rows[name]), flush=True)
    (out / "seq2seq.json").write_text(json.dumps(rows, indent=2))
    print(f"\nbudget: {' '.join(BUDGET_OVERRIDES)}; beam_size={BEAM_SIZE}\n")
    print(
        "| model | epochs | exact match (greedy / beam) | BLEU (greedy) | chrF (greedy) | "
        "decode, sources/s (greedy / beam) | training wall time |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, row in rows.items():
        g, b = row["greedy"], row["beam"]
        print(
            f"| {name} | {row['epochs']} | {g['exact_match']:.3f} / {b['exact_match']:.3f} | "
            f"{g['bleu']:.1f} | {g['chrf']:.1f} | {g['per_second']:.0f} / "
            f"{b['per_second']:.0f} | {row['wall_s'] / 60:.1f} min |"
        )


if __name__ == "__main__":
    main()
