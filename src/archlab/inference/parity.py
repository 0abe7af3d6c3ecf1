"""The check run right after export: the exported model against the eager one on the run's
own validation inputs, prepared as in training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from archlab.errors import ConfigError, DataError
from archlab.inference.loader import TrainedModel
from archlab.models import ImageSpec, InputSpec, SequenceSpec, TextSpec

PARITY_TOLERANCE = 1e-4  # max absolute logit difference allowed in fp32
PARITY_EXAMPLES = 64


def input_shape(spec: InputSpec) -> list[int]:
    """One full-length input's shape."""
    if isinstance(spec, ImageSpec):
        return [spec.channels, spec.height, spec.width]
    if isinstance(spec, SequenceSpec):
        return [spec.length, spec.features]
    return [spec.length]


def _run_exported(fmt: str, path: Path, x: torch.Tensor) -> torch.Tensor:
    if fmt == "onnx":
        import onnxruntime  # the optional extra, checked before export

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    program = torch.export.load(path)
    with torch.no_grad():
        return program.module()(x)


@torch.no_grad()
def parity(model: TrainedModel, fmt: str, path: Path, x: torch.Tensor) -> dict[str, Any]:
    """Eager vs the exported model on `x`: max absolute difference and agreeing predictions."""
    eager = model.network.cpu().eval()(x)
    exported = _run_exported(fmt, path, x)
    diff = float((eager - exported).abs().max())
    same = bool((eager.argmax(-1) == exported.argmax(-1)).all())
    return {
        "examples": len(x),
        "max_abs_diff": diff,
        "same_predictions": same,
        "tolerance": PARITY_TOLERANCE,
        "passed": diff < PARITY_TOLERANCE and same,
    }


def validation_inputs(model: TrainedModel, count: int) -> tuple[torch.Tensor, str]:
    """Up to `count` of the run's real validation inputs, prepared as in training (same split
    seeds, the checkpoint's fitted transforms); random inputs of the right shape, said so, when
    the run's data is not on this machine."""
    # The split lives in the data module (a LightningDataModule; no Trainer): export only.
    from archlab.data import build_datamodule

    datamodule = build_datamodule(model.cfg.data)
    datamodule.load_state_dict(model.fitted)
    try:
        datamodule.setup("validate")
    except (DataError, ConfigError) as error:
        generator = torch.Generator().manual_seed(0)
        if isinstance(model.spec, TextSpec):
            shape = (count, model.spec.length)
            x = torch.randint(2, model.spec.vocab_size, shape, generator=generator)
        else:
            x = torch.randn(count, *input_shape(model.spec), generator=generator)
        return x, f"{count} random inputs (the run's data is not here: {error})"
    x = datamodule.tensors["val"][0][:count]
    return x, f"{len(x)} validation examples"
