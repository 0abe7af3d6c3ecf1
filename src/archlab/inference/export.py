"""Export a trained network for runtimes without archlab: ONNX (PyTorch's `torch.export`-based
exporter) or a `torch.export` program (.pt2), a JSON sidecar of what its inputs need, and a
parity check against the eager model right after export."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.export import Dim

from archlab.atomic import write_atomic
from archlab.errors import ArchlabError, ConfigError
from archlab.inference.loader import TrainedModel
from archlab.inference.parity import PARITY_EXAMPLES, PARITY_TOLERANCE, parity, validation_inputs
from archlab.models import ImageSpec, SequenceSpec, TextSpec

FORMATS = {"onnx": ".onnx", "torch-export": ".pt2"}
EXPORT_EXTRA = ("onnx", "onnxruntime", "onnxscript")


def require_export_extra() -> None:
    """ConfigError naming the pip command when a package of `archlab[export]` is missing."""
    missing = []
    for name in EXPORT_EXTRA:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(
            f"--format onnx needs {', '.join(missing)}: pip install 'archlab[export]'"
        )


def _layout(spec: Any) -> tuple[list[Any], str, str, torch.dtype]:
    if isinstance(spec, ImageSpec):
        shape = ["batch", spec.channels, spec.height, spec.width]
        return shape, "NCHW", "standardised pixels (see normalization)", torch.float32
    if isinstance(spec, SequenceSpec):
        shape = ["batch", f"length<={spec.length}", spec.features]
        return shape, "NTF", "standardised values (see normalization)", torch.float32
    shape = ["batch", f"length<={spec.length}"]
    return shape, "NT", f"token ids right-padded with {spec.pad_id} (see tokenizer)", torch.int64


def _dynamic_shapes(spec: Any) -> tuple[dict[int, Any], ...]:
    axes: dict[int, Any] = {0: Dim("batch", min=1, max=1 << 20)}
    if isinstance(spec, (SequenceSpec, TextSpec)):
        axes[1] = Dim("length", min=1, max=spec.length)
    return (axes,)


def _static_length(model: TrainedModel) -> bool:
    """A `flatten` head reads a fixed number of positions: the length cannot vary."""
    return model.cfg.model.get("pooling") == "flatten" or model.task != "classify"


def sidecar(
    model: TrainedModel, fmt: str, path: Path, parity: Mapping[str, Any], dynamic: bool
) -> dict:
    """What a runtime needs besides the model file."""
    shape, layout, values, dtype = _layout(model.spec)
    if not dynamic and not isinstance(model.spec, ImageSpec):
        shape[1] = model.spec.length
    info: dict[str, Any] = {
        "format": fmt,
        "model_file": path.name,
        "task": model.task,
        "modality": model.modality,
        "classes": model.classes if model.task == "classify" else None,
        "input": {"name": "input", "shape": shape, "layout": layout, "dtype": str(dtype)[6:]},
        "input_values": values,
        "output": {
            "name": "logits",
            "meaning": "one logit per class (softmax for probabilities)"
            if model.task == "classify"
            else "the network's per-position outputs",
        },
        "checkpoint": str(model.checkpoint),
        "parity": dict(parity),
    }
    if "mean" in model.fitted:
        info["normalization"] = {
            "mean": model.fitted["mean"].tolist(),
            "std": model.fitted["std"].tolist(),
            "apply": "(x - mean) / std per "
            + ("channel" if model.modality == "image" else "feature"),
        }
    if model.modality == "text":
        info["tokenizer"] = {
            "file": path.with_name("tokenizer.json").name,
            "kind": model.tokenizer.kind,
        }
        info["input_length"] = model.spec.length
    return info


def _example(model: TrainedModel) -> torch.Tensor:
    shape = [2 if s == "batch" else s for s in _layout(model.spec)[0]]
    if isinstance(model.spec, TextSpec):
        return torch.randint(2, model.spec.vocab_size, (2, model.spec.length))
    if isinstance(model.spec, SequenceSpec):
        shape[1] = model.spec.length
    return torch.randn(*shape)


def _write(network: torch.nn.Module, fmt: str, example: tuple, shapes: tuple, path: Path) -> None:
    if fmt == "onnx":
        # Its registry warns once per torchvision op it cannot find: noise for archlab models.
        logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
        program = torch.onnx.export(
            network,
            example,
            dynamo=True,
            dynamic_shapes=shapes,
            input_names=["input"],
            output_names=["logits"],
            verbose=False,
        )
        program.save(str(path))
    else:
        torch.export.save(torch.export.export(network, example, dynamic_shapes=shapes), path)


def export_program(model: TrainedModel, fmt: str, path: Path) -> bool:
    """Write `model.network` to `path` in `fmt` (the file appears whole or not at all).
    Returns whether the length axis is dynamic: it is not for a `flatten` head, nor where the
    exporter fixes it (an LSTM/GRU is unrolled over its steps)."""
    network = model.network.cpu().eval()
    example = (_example(model),)
    shapes = _dynamic_shapes(model.spec)
    dynamic = len(shapes[0]) > 1 and not _static_length(model)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        if dynamic:
            try:
                _write(network, fmt, example, shapes, tmp)
            except Exception as ex:  # the exporter names a fixed axis so
                if "Constraints violated" not in str(ex):
                    raise
                dynamic = False
        if not dynamic:
            _write(network, fmt, example, ({0: shapes[0][0]},), tmp)
        tmp.replace(path)
    except ArchlabError:
        raise
    except Exception as ex:  # the exporters raise many types; name the failure, keep no file
        first = str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__
        raise ConfigError(f"Exporting {model.checkpoint} to {fmt} failed: {first[:300]}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return dynamic


def write_sidecar(
    model: TrainedModel, fmt: str, path: Path, result: Mapping[str, Any], dynamic: bool
) -> Path:
    info = sidecar(model, fmt, path, result, dynamic)
    json_path = path.with_name(f"{path.name}.json")  # model.onnx.json beside model.pt2.json
    if model.modality == "text":
        text = model.fitted["tokenizer"]
        write_atomic(path.with_name("tokenizer.json"), lambda f: f.write(text))
    write_atomic(json_path, lambda f: f.write(json.dumps(info, indent=2) + "\n"))
    return json_path


@dataclass
class ExportResult:
    model_file: Path
    sidecar: Path
    parity: dict[str, Any]


def export_model(model: TrainedModel, fmt: str, path: Path) -> ExportResult:
    """Export, check parity on validation examples, write the sidecar; a failed parity check
    removes the exported file."""
    if model.task == "translate":
        raise ConfigError(
            f"{model.checkpoint} was trained with task=translate: its decoder runs once per "
            "output token, which archlab-export does not write. Translate with archlab-predict "
            "or archlab-generate."
        )
    if fmt == "onnx":
        require_export_extra()
    path.parent.mkdir(parents=True, exist_ok=True)
    x, source = validation_inputs(model, PARITY_EXAMPLES)
    dynamic = export_program(model, fmt, path)
    result = {**parity(model, fmt, path, x), "inputs": source}
    if not result["passed"]:
        path.unlink(missing_ok=True)
        raise ConfigError(
            f"The exported {fmt} model disagrees with the eager one on {source}: max abs "
            f"difference {result['max_abs_diff']:.3g} (tolerance {PARITY_TOLERANCE}), same "
            f"predictions: {result['same_predictions']}. Nothing was kept."
        )
    return ExportResult(path, write_sidecar(model, fmt, path, result, dynamic), result)
