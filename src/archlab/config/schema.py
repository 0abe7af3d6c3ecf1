"""Structured-config schemas: the types, defaults and allowed values of every knob in conf/.

A field's `choices` metadata lists its allowed values; `validate.py` enforces them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def choice(default: str, *choices: str) -> Any:
    """A string field restricted to `choices`."""
    return field(default=default, metadata={"choices": (default, *choices)})


# ---------------------------------------------------------------- models
@dataclass
class CNNConfig:
    name: str = "cnn"
    channels: list[int] = field(default_factory=lambda: [32, 64])
    kernel_size: int = 3
    batch_norm: bool = True
    dropout: float = 0.1
    embed_dim: int = 64
    fc_dims: list[int] = field(default_factory=lambda: [128])
    pooling: str = choice("mean", "max", "flatten")


@dataclass
class RNNConfig:
    name: str = "rnn"
    cell: str = choice("lstm", "gru")
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    embed_dim: int = 64
    patch_size: int = 2
    fc_dims: list[int] = field(default_factory=list)
    pooling: str = choice("mean", "max", "flatten")


@dataclass
class TransformerConfig:
    name: str = "transformer"
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    ff_dim: int = 128
    dropout: float = 0.1
    positional: str = choice("sinusoidal", "learned")
    patch_size: int = 2
    fc_dims: list[int] = field(default_factory=list)
    pooling: str = choice("mean", "max", "flatten")


MODELS = {"cnn": CNNConfig, "rnn": RNNConfig, "transformer": TransformerConfig}


# ---------------------------------------------------------------- data
@dataclass
class ImageDataConfig:
    modality: str = "image"
    source: str = choice("digits", "folder", "mnist", "cifar10")
    path: str | None = None
    channels: int = 1
    image_size: list[int] | None = None
    normalize: bool = True
    batch_size: int = 64
    eval_batch_size: int = 512
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    split_seed: int = 0


@dataclass
class SequenceDataConfig:
    modality: str = "sequence"
    source: str = choice("digits", "csv", "ucr")
    path: str | None = None
    layout: str = choice("rows", "pixels")
    label_column: str = "label"
    num_features: int = 1
    normalize: bool = True
    batch_size: int = 64
    eval_batch_size: int = 512
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    split_seed: int = 0


@dataclass
class TextDataConfig:
    modality: str = "text"
    source: str = choice("stdlib_docs", "csv", "jsonl", "folder")
    path: str | None = None
    packages: list[str] = field(default_factory=list)
    max_per_class: int | None = None
    text_field: str = "text"
    label_field: str = "label"
    tokenizer: str = choice("bpe", "char")
    vocab_size: int = 2000
    max_length: int = 128
    batch_size: int = 64
    eval_batch_size: int = 512
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    split_seed: int = 0


DATA = {"image": ImageDataConfig, "sequence": SequenceDataConfig, "text": TextDataConfig}


# ---------------------------------------------------------------- task
@dataclass
class OptimizerConfig:
    name: str = choice("adamw", "sgd")
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.9
    nesterov: bool = False


@dataclass
class SchedulerConfig:
    name: str = choice("cosine", "constant")
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0


@dataclass
class ClassifyTaskConfig:
    name: str = "classify"
    label_smoothing: float = 0.0
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


TASKS = {"classify": ClassifyTaskConfig}


# ---------------------------------------------------------------- trainer, logging, callbacks
@dataclass
class TrainerConfig:
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_epochs: int = 10
    max_steps: int = -1
    max_time: str | None = None
    min_epochs: int | None = None
    gradient_clip_val: float | None = None
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 10
    check_val_every_n_epoch: int = 1
    val_check_interval: Any = None
    num_sanity_val_steps: int = 2
    deterministic: Any = False
    benchmark: bool | None = None
    enable_progress_bar: bool = True
    enable_model_summary: bool = True
    fast_dev_run: Any = False
    overfit_batches: float = 0.0
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    profiler: str | None = None


@dataclass
class LoggerConfig:
    name: str = choice("tensorboard", "csv", "none")


@dataclass
class CheckpointConfig:
    monitor: str = "val/acc"
    mode: str = choice("max", "min")
    save_last: bool = True
    save_top_k: int = 1


@dataclass
class EarlyStoppingConfig:
    enabled: bool = False
    monitor: str = "val/loss"
    mode: str = choice("min", "max")
    patience: int = 5
    min_delta: float = 0.0


@dataclass
class CallbacksConfig:
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    lr_monitor: bool = True
    progress_refresh_rate: int = 10


@dataclass
class PathsConfig:
    root: str = "outputs"


@dataclass
class TrainConfig:
    name: str = "run"
    seed: int = 42
    model: Any = None
    data: Any = None
    task: Any = None
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    test_after_fit: bool = True
