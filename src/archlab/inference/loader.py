"""One loader for every inference command: a run directory or a .ckpt -> the validated config,
the network with its weights, the fitted input transforms and the class names.

Everything comes from the checkpoint, read with `torch.load(weights_only=True)`; the model is
built by archlab's own builders from the config's plain settings (no class named by the
checkpoint is ever instantiated), and the training data is never needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from archlab.checkpointing.files import find_checkpoint, load_checkpoint, load_weights
from archlab.config.pipeline import SELF_SUPERVISED
from archlab.config.validate import validate
from archlab.data.framing import PairCodec
from archlab.data.tokenizers import Tokenizer
from archlab.data.transforms import STATE_KEYS, restore_tokenizer
from archlab.errors import CheckpointError
from archlab.models import ImageSpec, InputSpec, SequenceSpec, TextSpec, build_classifier
from archlab.models.pretrain import build_pretrainer
from archlab.models.seq2seq import build_translator

_MODEL_PREFIX = "model."  # where archlab's tasks keep the network inside the checkpoint


@dataclass
class TrainedModel:
    """A trained network in eval mode with what its inputs need."""

    checkpoint: Path
    cfg: DictConfig
    network: nn.Module
    spec: InputSpec
    fitted: dict[str, Any]

    @property
    def task(self) -> str:
        return str(self.cfg.task.name)

    @property
    def modality(self) -> str:
        return str(self.cfg.data.modality)

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.fitted.get("classes", [])]

    @cached_property
    def tokenizer(self) -> Tokenizer:
        return restore_tokenizer(self.fitted, str(self.cfg.data.tokenizer))

    @cached_property
    def codec(self) -> PairCodec:
        """A translation run's source and target ids (task=translate only)."""
        return PairCodec.from_fitted(self.fitted)


def _spec(modality: str, fitted: dict[str, Any], kind: str, source: Path) -> InputSpec:
    if modality == "pairs":
        tokenizer = PairCodec.from_fitted(fitted).source_tokenizer
        return TextSpec(tokenizer.vocab_size, int(fitted["source_length"]), tokenizer.pad_id)
    if modality == "text":
        tokenizer = restore_tokenizer(fitted, kind)
        return TextSpec(tokenizer.vocab_size, int(fitted["length"]), tokenizer.pad_id)
    shape = fitted.get("input_shape")
    if not shape:
        raise CheckpointError(
            f"{source} does not record the shape of its inputs (checkpoints written before "
            "archlab saved it): re-train the run with this archlab to use it for inference."
        )
    shape = [int(s) for s in shape]
    return ImageSpec(*shape) if modality == "image" else SequenceSpec(*shape)


def load_trained(path: Path) -> TrainedModel:
    """The model in `path` (a run directory: its best checkpoint; or a .ckpt file)."""
    ckpt_path = find_checkpoint(Path(path).expanduser())
    checkpoint = load_checkpoint(ckpt_path)
    cfg = validate(OmegaConf.create(checkpoint["hyper_parameters"]))
    modality = str(cfg.data.modality)
    fitted = checkpoint.get(STATE_KEYS[modality])
    needed = "target_tokenizer" if modality == "pairs" else "classes"
    if not isinstance(fitted, dict) or needed not in fitted:
        raise CheckpointError(
            f"{ckpt_path} holds no fitted input transforms ({STATE_KEYS[modality]} state): "
            "was it written by archlab-train?"
        )
    kind = str(cfg.data.get("tokenizer", ""))
    spec = _spec(modality, fitted, kind, ckpt_path)
    task = str(cfg.task.name)
    if modality == "pairs":
        codec = PairCodec.from_fitted(fitted)
        network = build_translator(cfg.model, spec, codec.target_vocab_size, codec.target_length)
    elif task in SELF_SUPERVISED:
        network = build_pretrainer(cfg.model, spec, task)
    else:
        network = build_classifier(cfg.model, spec, len(fitted["classes"]))
    weights = {
        k[len(_MODEL_PREFIX) :]: v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith(_MODEL_PREFIX)
    }
    load_weights(network, weights, ckpt_path)
    network.eval()
    return TrainedModel(ckpt_path, cfg, network, spec, dict(fitted))
