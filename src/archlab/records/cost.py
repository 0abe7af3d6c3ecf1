"""What a run cost: parameters, forward FLOPs, training time and throughput, peak memory and
inference latency, recorded in metrics.json (`cost`) and TensorBoard's HParams tab.

FLOPs are counted by `torch.utils.flop_counter` (a multiply-add is 2 FLOPs; matrix products,
convolutions and attention only: element-wise work is left out). Peak memory is the process's
resident set on CPU (reset when the fit starts, on Linux) and `torch.cuda.max_memory_allocated`
on a GPU.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.strategies import DeepSpeedStrategy, FSDPStrategy
from pytorch_lightning.trainer.states import TrainerFn
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

_PROC_STATUS = Path("/proc/self/status")
_PROC_CLEAR_REFS = Path("/proc/self/clear_refs")
# Latency: untimed warm-up calls, then timed calls until this many or this long.
WARMUP_CALLS = 1
MAX_TIMED_CALLS = 10
TIMING_BUDGET_S = 0.1
FLOP_EXAMPLES = 8  # FLOPs are counted on the first examples of an eval batch
# What a sharded model (FSDP, DeepSpeed over several processes) records as null.
INFERENCE_FIELDS = (
    "flops_per_example",
    "latency_batch1_ms",
    "latency_eval_batch_ms",
    "eval_batch_size",
)


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@contextlib.contextmanager
def _inference(model: nn.Module) -> Iterator[None]:
    """Eval mode without gradients, then the mode the model was in: batch-norm statistics and
    the random stream of training are left untouched."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _cpu_attention_flops(query, key, value, *_: Any, out_shape: Any = None, **__: Any) -> int:
    return sdpa_flop_count(query, key, value)


# The counter knows the GPU attention kernels, not the CPU one (it would count 0).
_CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}


def forward_flops(model: nn.Module, inputs: torch.Tensor) -> int:
    """FLOPs of one forward pass over the batch `inputs` (all examples together); per example,
    the run's record divides by the batch size (padded text counts its padding)."""
    # oneDNN's and cuDNN's fused RNN kernels are invisible to the counter (an LSTM would count
    # 0): counted on PyTorch's own RNN path, made of matrix products.
    counter = FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION)
    with _inference(model), warnings.catch_warnings(), _native_rnn(), counter:
        model(inputs)
    return int(counter.get_total_flops())


@contextlib.contextmanager
def _native_rnn() -> Iterator[None]:
    warnings.filterwarnings("ignore", "TF32 acceleration", UserWarning)  # oneDNN's flags notice
    with torch.backends.mkldnn.flags(enabled=False), torch.backends.cudnn.flags(enabled=False):
        yield


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def latency_per_example(
    model: nn.Module, inputs: torch.Tensor, context: Callable[[], Any] = contextlib.nullcontext
) -> float:
    """Median seconds per example of a forward pass over `inputs` after a short warm-up.

    `context`: the precision context the model was trained under (autocast for mixed runs).
    """
    device = inputs.device
    times = []
    with _inference(model), context():
        for _ in range(WARMUP_CALLS):
            model(inputs)
        _sync(device)
        spent = 0.0
        while len(times) < MAX_TIMED_CALLS and spent < TIMING_BUDGET_S:
            start = time.perf_counter()
            model(inputs)
            _sync(device)
            times.append(time.perf_counter() - start)
            spent += times[-1]
    return statistics.median(times) / len(inputs)


def reset_peak_memory(device: torch.device) -> None:
    """Start the peak-memory count now (on CPU: Linux's resident-set high-water mark)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):
        _PROC_CLEAR_REFS.write_text("5")


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory since `reset_peak_memory`, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if _PROC_STATUS.is_file():
        for line in _PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    # Elsewhere: the peak over the whole process; kilobytes on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


class TrainClock(pl.Callback):
    """Training wall time, examples trained on and the time spent validating during the fit.

    Kept in checkpoints, so that a resumed run counts the interrupted attempt too; `totals`
    holds the fit's figures once it ended (evaluating a checkpoint afterwards restores the
    checkpoint's own, earlier, state into the callback).
    """

    def __init__(self) -> None:
        self.fit_seconds = 0.0
        self.val_seconds = 0.0
        self.examples = 0
        self._fit_start: float | None = None
        self._val_start: float | None = None
        self.totals: dict[str, float] = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        reset_peak_memory(trainer.strategy.root_device)
        self._fit_start = time.perf_counter()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.fit_seconds = self._elapsed()
        self._fit_start = None
        self.totals = self.state_dict()

    def _elapsed(self) -> float:
        if self._fit_start is None:
            return self.fit_seconds
        return self.fit_seconds + time.perf_counter() - self._fit_start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch: Any, *_: Any) -> None:
        self.examples += len(batch[0]) * trainer.world_size

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._val_start is not None:
            self.val_seconds += time.perf_counter() - self._val_start
            self._val_start = None

    def state_dict(self) -> dict[str, Any]:
        return {
            "fit_seconds": self._elapsed(),
            "val_seconds": self.val_seconds,
            "examples": self.examples,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fit_seconds = state["fit_seconds"]
        self.val_seconds = state["val_seconds"]
        self.examples = state["examples"]


def run_cost(
    trainer: pl.Trainer,
    model: nn.Module,
    eval_batch: torch.Tensor,
    clock: TrainClock,
    params: int,
    single_input: bool = True,
) -> dict[str, Any]:
    """The cost record of a finished fit; `model` holds the best checkpoint's weights,
    `eval_batch` is one batch of inputs at the eval batch size and `params` the trainable
    parameters counted before the fit (a sharded model holds only its share). Without
    `single_input` (an encoder-decoder, whose forward also reads targets) FLOPs and latency
    are left null: `make bench-seq2seq` measures decoding."""
    device = trainer.strategy.root_device
    peak = peak_memory_mb(device)  # before the latency runs add their own
    record = {
        "params": params,
        "train_time_s": clock.totals["fit_seconds"],
        "optimizer_steps": trainer.global_step,
        "train_examples": clock.totals["examples"],
        "throughput_examples_per_s": _throughput(clock.totals),
        "peak_memory_mb": peak,
        "peak_memory_kind": "cuda_allocated" if device.type == "cuda" else "rss",
    }
    if not single_input:
        return record | dict.fromkeys(INFERENCE_FIELDS)
    if isinstance(trainer.strategy, FSDPStrategy | DeepSpeedStrategy) and trainer.world_size > 1:
        # A forward pass of a sharded model on this process alone would wait for the others.
        return record | dict.fromkeys(INFERENCE_FIELDS)
    model.to(device)
    plugin = trainer.strategy.precision_plugin  # as trained: autocast, or bf16 inputs
    eval_batch = plugin.convert_input(eval_batch.to(device))
    precision = plugin.forward_context
    sample = eval_batch[:FLOP_EXAMPLES]
    return record | {
        "flops_per_example": forward_flops(model, sample) / len(sample),
        "latency_batch1_ms": 1e3 * latency_per_example(model, eval_batch[:1], precision),
        "latency_eval_batch_ms": 1e3 * latency_per_example(model, eval_batch, precision),
        "eval_batch_size": len(eval_batch),
    }


def _throughput(totals: dict[str, float]) -> float:
    """Examples per second of training, validation during the fit left out."""
    seconds = totals["fit_seconds"] - totals["val_seconds"]
    return totals["examples"] / seconds if seconds > 0 else 0.0
