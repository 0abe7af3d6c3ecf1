"""Inference speed of each architecture on its native modality, on the CPU.

What is measured
----------------
Each architecture (CNN on the digits images, RNN on the digits read as series, Transformer on
the standard-library docstrings; default configs) is trained briefly (weights do not change
speed), then its classifier predicts on validation inputs at batch 1 and batch 256 through
three runtimes, in one process and interleaved: eager PyTorch (`inference_mode`),
`torch.compile` (Inductor; compile time excluded, reported apart) and ONNX Runtime (the model
`archlab-export` writes, same intra-op thread count as torch). Throughput is samples/s, the
median of 5 timed repeats after a warm-up; ratios are to eager within the same run.

Time to first prediction is the wall time of `archlab-predict RUN_DIR one-input` as a user
runs it (start-up, imports, checkpoint load, one prediction, exit), beside
`python -c "import torch"`, the floor any PyTorch command pays.

Generation: tokens/s of a Transformer LM (random weights, a 2,000-token vocabulary) continuing
a prompt greedily, with the key/value cache and without it (re-reading the prefix at every
step): the default LM config (128 positions, 16 + 100 tokens) and a wider, deeper one with a
long prompt (1,024 positions, 512 + 200 tokens).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from archlab.config.job import JobContext
from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.inference.export import export_model
from archlab.inference.loader import load_trained
from archlab.inference.parity import validation_inputs
from archlab.inference.sampling import Sampling, generate
from archlab.models.pretrain import build_pretrainer
from archlab.models.spec import TextSpec
from archlab.run.fit import fit
from archlab.run.stages import stage_config

ARCHITECTURES = {
    "cnn": ["model=cnn", "data=image"],
    "rnn": ["model=rnn", "data=sequence"],
    "transformer": ["model=transformer", "data=text", "data.max_length=128"],  # as measured
}
BRIEF = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=5",
    "test_after_fit=false",
    "logger=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]
BATCHES = (1, 256)
REPEATS = 5


def _throughput(run: Callable[[], object], batch: int, budget_s: float = 0.4) -> float:
    """Samples/s: the median of REPEATS timings of enough calls to fill about `budget_s`."""
    run()
    start = time.perf_counter()
    run()
    calls = max(1, int(budget_s / max(time.perf_counter() - start, 1e-6)))
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(calls):
            run()
        rates.append(calls * batch / (time.perf_counter() - start))
    return statistics.median(rates)


def _wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def _first_prediction(run_dir: Path, x: torch.Tensor, arch: str, tmp: Path) -> float:
    """Wall time of `archlab-predict` on one input file of the run's modality."""
    from archlab.inference.loader import load_trained as _load

    model = _load(run_dir)
    if model.modality == "text":
        path = tmp / f"{arch}.txt"
        path.write_text("Return the logger with the given name.\n")
    elif model.modality == "sequence":
        path = tmp / f"{arch}.csv"
        n = x.shape[1] * x.shape[2]
        path.write_text(",".join(f"v{i}" for i in range(n)) + "\n" + ",".join(["1"] * n) + "\n")
    else:
        from PIL import Image

        path = tmp / f"{arch}.png"
        Image.new("L", (x.shape[3], x.shape[2])).save(path)
    return statistics.median(
        _wall([sys.executable, "-m", "archlab.cli.predict", str(run_dir), str(path)])
        for _ in range(3)
    )


def _bench_architecture(arch: str, out: Path) -> tuple[list[str], float, float]:
    overrides = [*ARCHITECTURES[arch], *BRIEF]
    cfg = stage_config(validate(compose_config("train", overrides)), None)
    run_dir = out / arch
    fit(cfg, run_dir, JobContext(run_dir))
    model = load_trained(run_dir)
    network = model.network
    x, _ = validation_inputs(model, 256)
    x = x.repeat(-(-256 // len(x)), *[1] * (x.ndim - 1))[:256]
    onnx_path = out / arch / "model.onnx"
    export_model(model, "onnx", onnx_path)
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(
        str(onnx_path), options, providers=["CPUExecutionProvider"]
    )
    compiled = torch.compile(network)
    compile_s = 0.0
    rows = []
    for batch in BATCHES:
        xb = x[:batch]
        feed = {"input": xb.numpy()}
        with torch.inference_mode():
            start = time.perf_counter()
            compiled(xb)
            compile_s += time.perf_counter() - start
            eager = _throughput(lambda xb=xb: network(xb), batch)
            fast = _throughput(lambda xb=xb: compiled(xb), batch)
        ort = _throughput(lambda feed=feed: session.run(None, feed), batch)
        rows.append(
            f"| {arch} ({model.modality}) | {batch} | {eager:,.0f} | {fast:,.0f} "
            f"({fast / eager:.2f}x) | {ort:,.0f} ({ort / eager:.2f}x) |"
        )
    first = _first_prediction(run_dir, x, arch, out)
    return rows, compile_s, first


GENERATION = {  # (model overrides, positions, prompt tokens, new tokens)
    "default LM config": ([], 128, 16, 100),
    "d_model 256, 4 layers": (
        ["model.d_model=256", "model.num_layers=4", "model.ff_dim=1024", "model.num_heads=8"],
        1024, 512, 200,
    ),
}  # fmt: skip


def _bench_generation(overrides: list[str], length: int, prompt: int, new: int) -> list[float]:
    """Tokens/s with and without the key/value cache (greedy, random weights: same cost)."""
    cfg = validate(
        compose_config("train", ["model=transformer", "data=text", "task=lm", *overrides])
    )
    network = build_pretrainer(cfg.model, TextSpec(2000, length), "lm").eval()
    ids = torch.randint(2, 2000, (1, prompt), generator=torch.Generator().manual_seed(0))
    rates = []
    for cache in (True, False):
        start = time.perf_counter()
        generate(network, ids, new, Sampling(temperature=0), use_cache=cache)
        rates.append(new / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.infer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temp folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="archlab-infer-"))
    out.mkdir(parents=True, exist_ok=True)
    rows, extras = [], []
    for arch in ARCHITECTURES:
        lines, compile_s, first = _bench_architecture(arch, out)
        rows += lines
        extras.append(f"| {arch} | {first:.2f} s | {compile_s:.1f} s |")
        print(f"{arch}: done", flush=True)
    floor = statistics.median(_wall([sys.executable, "-c", "import torch"]) for _ in range(3))
    generation = {name: _bench_generation(*case) for name, case in GENERATION.items()}
    load = os.getloadavg()[0]
    print(f"\ntorch threads {torch.get_num_threads()}, load average {load:.1f}; runs in {out}\n")
    print("| model | batch | eager samples/s | torch.compile | ONNX Runtime |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    print(
        f"\n| model | command to first prediction (`import torch`: {floor:.2f} s) "
        "| torch.compile warm-up (both batches) |"
    )
    print("|---|---|---|")
    print("\n".join(extras))
    print("\n| Transformer LM | prompt + new tokens | tokens/s, KV cache | without | ratio |")
    print("|---|---|---|---|---|")
    for name, (cached, uncached) in generation.items():
        _, _, prompt, new = GENERATION[name]
        print(
            f"| {name} | {prompt} + {new} | {cached:,.0f} | {uncached:,.0f} | "
            f"{cached / uncached:.1f}x |"
        )


if __name__ == "__main__":
    main()
