"""Training throughput of a GPT-2-small-shaped Transformer LM: tokens/s and model FLOPs
utilisation (MFU) against this device's own measured matmul peak.

    python -m bench.throughput              # CUDA: GPT-2 small (124M), bf16 autocast, compiled
    python -m bench.throughput --tiny       # any machine: a tiny shape, to check the path runs

The model is archlab's Transformer (pre-norm blocks, attention through
`scaled_dot_product_attention`, causal, so flash attention on CUDA) between a token embedding
and a linear LM head tied to it, trained with AdamW (fused on CUDA) on random tokens: the
data path is not what is measured. Model FLOPs per token follow the PaLM appendix B / nanoGPT
count: 6 x parameters (without position embeddings) + 12 x layers x d_model x context, i.e.
forward and backward of every matmul including attention, and no recomputation. The peak
is measured here, as the best of several large bf16 (fp32 on CPU) matmuls, so MFU is relative
to what this device actually delivers rather than a datasheet figure.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from archlab.models.transformer import Transformer


@dataclass(frozen=True)
class Shape:
    vocab: int
    d_model: int
    layers: int
    heads: int
    context: int
    batch: int


GPT2_SMALL = Shape(vocab=50304, d_model=768, layers=12, heads=12, context=1024, batch=16)
TINY = Shape(vocab=512, d_model=64, layers=2, heads=4, context=64, batch=4)


class LM(nn.Module):
    """Token embedding -> archlab Transformer (causal) -> LM head tied to the embedding."""

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.embed = nn.Embedding(shape.vocab, shape.d_model)
        self.backbone = Transformer(
            shape.d_model, shape.heads, shape.layers, 4 * shape.d_model, dropout=0.0,
            positional="learned", max_len=shape.context, causal=True,
        )  # fmt: skip
        self.head = nn.Linear(shape.d_model, shape.vocab, bias=False)
        self.head.weight = self.embed.weight
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        features, _ = self.backbone(self.embed(tokens))
        return self.head(features)


def flops_per_token(model: LM, shape: Shape) -> float:
    positions = sum(p.numel() for p in model.backbone.positions.parameters())
    params = sum(p.numel() for p in model.parameters()) - positions
    return 6 * params + 12 * shape.layers * shape.d_model * shape.context


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 10) -> float:
    """Best FLOP/s of a square matmul of `size` on `device` (2 size^3 FLOPs each)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(3):
        a @ b
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        _sync(device)
        best = min(best, (time.perf_counter() - start) / 5)
    return 2 * size**3 / best


def train_throughput(
    shape: Shape, device: torch.device, steps: int, warmup: int, compile_model: bool
) -> dict[str, float]:
    """Seconds per optimizer step (median of `steps` after `warmup`) and tokens/s."""
    torch.manual_seed(0)
    model = LM(shape).to(device)
    if compile_model:
        model.compile()
    cuda = device.type == "cuda"
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=cuda or None)
    tokens = torch.randint(0, shape.vocab, (shape.batch, shape.context + 1), device=device)
    x, y = tokens[:, :-1], tokens[:, 1:]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda)
    times = []
    for step in range(warmup + steps):
        _sync(device)
        start = time.perf_counter()
        with autocast:
            logits = model(x)
            loss = F.cross_entropy(logits.float().view(-1, shape.vocab), y.reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    step_time = sorted(times)[len(times) // 2]
    return {
        "step_s": step_time,
        "tokens_per_s": shape.batch * shape.context / step_time,
        "flops_per_token": flops_per_token(model, shape),
        "parameters": float(sum(p.numel() for p in model.parameters())),
        "final_loss": float(loss.detach()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shape: runs on a CPU")
    parser.add_argument("--batch", type=int, help="sequences per step (default: the shape's)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile on CUDA")
    parser.add_argument("--output", type=Path, help="also write the results as JSON")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        parser.exit(2, "bench.throughput: error: no CUDA GPU here; --tiny runs the CPU path\n")
    shape = TINY if args.tiny else GPT2_SMALL
    if args.batch:
        shape = Shape(**{**asdict(shape), "batch": args.batch})
    device = torch.device("cuda" if cuda else "cpu")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    dtype = torch.bfloat16 if cuda else torch.float32
    peak = matmul_peak(device, dtype, 8192 if cuda else 512)
    result = train_throughput(shape, device, args.steps, args.warmup, cuda and not args.no_compile)
    achieved = result["tokens_per_s"] * result["flops_per_token"]
    report = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "shape": asdict(shape),
        "precision": "bf16-mixed" if cuda else "32-true",
        "compiled": cuda and not args.no_compile,
        **result,
        "model_tflops": achieved / 1e12,
        "peak_matmul_tflops": peak / 1e12,
        "mfu": achieved / peak,
    }
    print(
        f"{report['device']}: {result['parameters'] / 1e6:.1f}M parameters, "
        f"batch {shape.batch} x {shape.context} tokens, {report['precision']}"
        f"{', compiled' if report['compiled'] else ''}\n"
        f"  step {result['step_s'] * 1e3:.1f} ms (median of {args.steps}), "
        f"{result['tokens_per_s']:,.0f} tokens/s, {achieved / 1e12:.2f} model TFLOP/s\n"
        f"  measured {'bf16' if cuda else 'fp32'} matmul peak {peak / 1e12:.2f} TFLOP/s "
        f"-> MFU {report['mfu']:.1%}"
    )
    if args.output:
        args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
