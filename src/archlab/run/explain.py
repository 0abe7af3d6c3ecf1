"""Attributions of a trained classifier's predictions for given inputs, as PNG files."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from omegaconf import OmegaConf

from archlab.checkpointing.files import find_checkpoint, load_checkpoint
from archlab.config.validate import validate
from archlab.data import build_datamodule
from archlab.errors import ConfigError, DataError
from archlab.records.attributions import attribute, attribution_figure, token_labels
from archlab.tasks.build import build_task

_EXAMPLE = re.compile(r"^(train|val|test):(\d+)$")


def _input(data: object, text: str) -> torch.Tensor:
    """One model input: SPLIT:INDEX of the run's data, or (text runs) a text or a .txt file."""
    match = _EXAMPLE.match(text)
    if match:
        inputs = data.tensors[match.group(1)][0]
        index = int(match.group(2))
        if index >= len(inputs):
            raise DataError(
                f"INPUT {text}: the {match.group(1)} split has {len(inputs)} examples "
                f"(indices 0-{len(inputs) - 1})."
            )
        return inputs[index]
    if data.cfg["modality"] != "text":
        raise DataError(
            f"INPUT {text!r} is not SPLIT:INDEX: for {data.cfg['modality']} runs name an "
            "example of the run's data, e.g. test:0."
        )
    path = Path(text)
    if path.suffix == ".txt" and path.is_file():
        text = path.read_text(encoding="utf-8")
    return data.transform([text])[0]


def explain(run: Path, inputs: list[str], output: Path, method: str) -> list[Path]:
    """Write one PNG per input into `output`: the input with its attribution scores for the
    class the model predicts."""
    ckpt_path = find_checkpoint(run)
    checkpoint = load_checkpoint(ckpt_path)
    cfg = validate(OmegaConf.create(checkpoint["hyper_parameters"]))
    if cfg.task.name != "classify":
        raise ConfigError(
            f"{run} holds a task={cfg.task.name} run; archlab-explain explains classifiers "
            "(task=classify)."
        )
    data = build_datamodule(cfg.data)
    state = checkpoint.get(type(data).__qualname__)
    if state:
        data.load_state_dict(state)
    data.setup("test")
    task = build_task(cfg, data, checkpoint["hyper_parameters"])
    task.load_state_dict(checkpoint["state_dict"])
    x = torch.stack([_input(data, text) for text in inputs])
    text = cfg.data.modality == "text"
    if text and method != "integrated_gradients":
        raise ConfigError(
            f"--method {method} does not explain token inputs; text runs use "
            "--method integrated_gradients."
        )
    background = data.tensors["train"][0][:256] if text else None
    scores, predicted = attribute(task.model, x, method, background)
    tokens = token_labels(data.tokenizer, x) if text else None
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for i, text in enumerate(inputs):
        title = f"{text[:40]}: predicted {data.classes[predicted[i]]}"
        figure = attribution_figure(
            x[i : i + 1].float().numpy(), scores[i : i + 1], [title], tokens and tokens[i : i + 1]
        )
        path = output / f"explain-{i:02d}.png"
        figure.savefig(path, dpi=120)
        written.append(path)
    return written
