"""Builds stem -> backbone -> head for any architecture on any modality from plain settings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import nn

from archlab.errors import ConfigError
from archlab.models.cnn import CNN
from archlab.models.heads import ClassificationHead
from archlab.models.network import Network
from archlab.models.rnn import RNN
from archlab.models.series_cnn import FCN, ResNet1D
from archlab.models.spec import ImageSpec, InputSpec, SequenceSpec, TextSpec
from archlab.models.stems import (
    Identity,
    PatchEmbedding,
    Projection,
    SeriesPatches,
    TokenEmbedding,
)
from archlab.models.transformer import Transformer


def _image_patches(spec: ImageSpec, patch_size: int) -> int:
    if spec.height % patch_size or spec.width % patch_size:
        raise ConfigError(
            f"model.patch_size={patch_size} does not divide the image size "
            f"{spec.height}x{spec.width}; pick a divisor or set data.image_size"
        )
    return (spec.height // patch_size) * (spec.width // patch_size)


def series_patch(cfg: Mapping[str, Any], length: int) -> int:
    """Steps per position on numeric series: `series_patch`, or null: about 32 positions for
    long series, one step per position for series shorter than 64 steps."""
    return cfg.get("series_patch") or max(1, length // 32)


def pooling(cfg: Mapping[str, Any], spec: InputSpec) -> str:
    """How positions become one vector: `pooling`, or null (the RNN's default): max over text
    tokens, where a few words carry the class and a mean over hundreds of positions dilutes
    them (README: the docstrings' RNN +1.9 points), and mean over image patches and series."""
    return cfg.get("pooling") or ("max" if isinstance(spec, TextSpec) else "mean")


def _sequence_stem(cfg: Mapping[str, Any], spec: InputSpec, dim: int) -> tuple[nn.Module, int]:
    """Stem for backbones that read (B, T, D); returns it with the number of positions T."""
    if isinstance(spec, ImageSpec):
        patch = cfg["patch_size"]
        return PatchEmbedding(spec.channels, dim, patch), _image_patches(spec, patch)
    if isinstance(spec, TextSpec):
        return TokenEmbedding(spec.vocab_size, dim, spec.pad_id), spec.length
    patch = series_patch(cfg, spec.length)
    if patch == 1:
        return Projection(spec.features, dim), spec.length
    return SeriesPatches(spec.features, dim, patch), math.ceil(spec.length / patch)


def _cnn(cfg: Mapping[str, Any], spec: InputSpec) -> tuple[nn.Module, nn.Module, int]:
    if isinstance(spec, ImageSpec):
        stem, width, dims = Identity(), spec.channels, 2
        sizes = [spec.height, spec.width]
    elif isinstance(spec, TextSpec):
        stem, width, dims = TokenEmbedding(spec.vocab_size, cfg["embed_dim"], spec.pad_id), 0, 1
        width, sizes = cfg["embed_dim"], [spec.length]
    elif cfg.get("series", "blocks") != "blocks":
        series = FCN if cfg["series"] == "fcn" else ResNet1D
        return Identity(), series(spec.features), spec.length
    else:
        stem, width, dims, sizes = Identity(), spec.features, 1, [spec.length]
    backbone = CNN(
        width, list(cfg["channels"]), cfg["kernel_size"], cfg["batch_norm"], cfg["dropout"], dims
    )
    positions = math.prod(math.ceil(s / 2 ** len(cfg["channels"])) for s in sizes)
    return stem, backbone, positions


def _rnn(cfg: Mapping[str, Any], spec: InputSpec) -> tuple[nn.Module, nn.Module, int]:
    if isinstance(spec, SequenceSpec) and series_patch(cfg, spec.length) == 1:
        stem, width, positions = Identity(), spec.features, spec.length
    else:
        stem, positions = _sequence_stem(cfg, spec, cfg["embed_dim"])
        width = cfg["embed_dim"]
    backbone = RNN(
        width,
        cfg["hidden_size"],
        cfg["num_layers"],
        cfg["cell"],
        cfg["bidirectional"],
        cfg["dropout"],
    )
    return stem, backbone, positions


def _transformer(cfg: Mapping[str, Any], spec: InputSpec) -> tuple[nn.Module, nn.Module, int]:
    if cfg["d_model"] % cfg["num_heads"]:
        raise ConfigError(
            f"model.d_model={cfg['d_model']} must be divisible by model.num_heads="
            f"{cfg['num_heads']}"
        )
    stem, positions = _sequence_stem(cfg, spec, cfg["d_model"])
    backbone = Transformer(
        cfg["d_model"],
        cfg["num_heads"],
        cfg["num_layers"],
        cfg["ff_dim"],
        cfg["dropout"],
        cfg["positional"],
        max_len=positions,
        causal=cfg.get("causal", False),
    )
    return stem, backbone, positions


_ARCHITECTURES = {"cnn": _cnn, "rnn": _rnn, "transformer": _transformer}


def build_body(cfg: Mapping[str, Any], spec: InputSpec) -> tuple[nn.Module, nn.Module, int]:
    """Stem and backbone for `spec`-shaped inputs, and the number of backbone output positions:
    the part of a model that pretraining learns and finetuning transfers."""
    return _ARCHITECTURES[cfg["name"]](cfg, spec)


def build_classifier(cfg: Mapping[str, Any], spec: InputSpec, num_classes: int) -> Network:
    """A classifier for `spec`-shaped inputs from a validated `model` config section."""
    stem, backbone, positions = build_body(cfg, spec)
    how = pooling(cfg, spec)
    in_dim = backbone.out_dim * (positions if how == "flatten" else 1)
    fc_dims, dropout = list(cfg["fc_dims"]), cfg["dropout"]
    if isinstance(backbone, (FCN, ResNet1D)):
        # The published FCN and ResNet end in pooled features -> classes, with no hidden layer
        # and no dropout: a hidden layer of 128 with dropout cost ArrowHead 5 points (README).
        fc_dims, dropout = [], 0.0
    head = ClassificationHead(in_dim, num_classes, fc_dims, dropout, how)
    return Network(stem, backbone, head)
