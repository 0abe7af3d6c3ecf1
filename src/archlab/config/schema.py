"""Structured-config schemas: the types, defaults and allowed values of every knob in conf/.

A field's metadata may hold `choices` (allowed values) and bounds (`ge`, `gt`, `le`, `lt`,
applied to each item of a list); `validate.py` enforces them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def choice(default: Any, *choices: Any) -> Any:
    """A field restricted to `choices`."""
    return field(default=default, metadata={"choices": (default, *choices)})


def bounded(default: Any = None, factory: Any = None, **bounds: float) -> Any:
    """A numeric field (or list of numbers) within `bounds`: ge, gt, le, lt."""
    if factory is not None:
        return field(default_factory=factory, metadata=bounds)
    return field(default=default, metadata=bounds)


def positive(default: Any = None, factory: Any = None) -> Any:
    return bounded(default, factory, ge=1)


def probability(default: float | None) -> Any:
    """A rate in [0, 1)."""
    return bounded(default, ge=0, lt=1)


# ---------------------------------------------------------------- models
@dataclass
class CNNConfig:
    name: str = "cnn"
    channels: list[int] = positive(factory=lambda: [32, 64])
    kernel_size: int = positive(3)
    batch_norm: bool = True
    dropout: float = probability(0.1)
    embed_dim: int = positive(64)
    fc_dims: list[int] = positive(factory=lambda: [128])
    pooling: str = choice("mean", "max", "flatten", "last")
    series: str = choice("fcn", "resnet", "blocks")


@dataclass
class RNNConfig:
    name: str = "rnn"
    cell: str = choice("lstm", "gru")
    hidden_size: int = positive(128)
    num_layers: int = positive(1)
    bidirectional: bool = False
    dropout: float = probability(0.0)
    embed_dim: int = positive(64)
    patch_size: int = positive(2)
    series_patch: int | None = positive(None)
    fc_dims: list[int] = positive(factory=list)
    pooling: str | None = choice(None, "mean", "max", "flatten", "last")
    attention: bool = True


@dataclass
class TransformerConfig:
    name: str = "transformer"
    d_model: int = positive(64)
    num_heads: int = positive(4)
    num_layers: int = positive(2)
    ff_dim: int = positive(128)
    dropout: float = probability(0.1)
    positional: str = choice("sinusoidal", "learned")
    patch_size: int = positive(2)
    series_patch: int | None = positive(None)
    fc_dims: list[int] = positive(factory=list)
    pooling: str = choice("mean", "max", "flatten", "last")
    causal: bool = False


MODELS = {"cnn": CNNConfig, "rnn": RNNConfig, "transformer": TransformerConfig}


# ---------------------------------------------------------------- data
@dataclass
class DataConfig:
    """What every modality shares; each modality's schema sets `source`'s options and adds more."""

    modality: str = ""
    source: str = ""
    path: str | None = None
    batch_size: int | None = positive(None)  # None: sized from the train split (budget)
    eval_batch_size: int = positive(512)
    val_fraction: float = probability(0.1)
    test_fraction: float = probability(0.2)
    split_seed: int = 0
    label_fraction: float = bounded(1.0, gt=0, le=1)
    in_memory: bool | None = None
    num_workers: int | None = bounded(None, ge=0)
    cache_dir: str | None = None
    on_bad: str = choice("stop", "skip")
    fit_sample: int = positive(50000)

    max_examples: int | None = positive(None)  # unlabelled sources only: read at most this many


@dataclass
class ImageAugmentConfig:
    flip: bool = False
    crop_scale: float = bounded(1.0, gt=0, le=1)
    rotate: float = bounded(0.0, ge=0, le=180)
    translate: float = bounded(0.0, ge=0, le=0.5)
    color: float = probability(0.0)


@dataclass
class SeriesAugmentConfig:
    jitter: float = bounded(0.0, ge=0)
    scale: float = bounded(0.0, ge=0)
    crop: float = bounded(1.0, gt=0, le=1)


@dataclass
class TextAugmentConfig:
    token_dropout: float | None = probability(None)  # None: budget.rnn_token_dropout or 0


@dataclass
class ImageDataConfig(DataConfig):
    modality: str = "image"
    source: str = choice("digits", "folder", "mnist", "cifar10", "corpus", "glyphs")
    channels: int = choice(1, 3)
    image_size: list[int] | None = positive(None)
    normalize: bool = True
    augment: ImageAugmentConfig = field(default_factory=ImageAugmentConfig)


@dataclass
class SequenceDataConfig(DataConfig):
    modality: str = "sequence"
    source: str = choice("digits", "csv", "ucr", "corpus", "glyphs")
    layout: str = choice("rows", "pixels")
    label_column: str = "label"
    num_features: int = positive(1)
    normalize: bool = True
    augment: SeriesAugmentConfig = field(default_factory=SeriesAugmentConfig)


@dataclass
class TextDataConfig(DataConfig):
    modality: str = "text"
    source: str = choice("stdlib_docs", "csv", "jsonl", "folder", "corpus", "python_docs")
    packages: list[str] = field(
        default_factory=lambda: [
            *("email", "logging", "unittest", "asyncio"),
            *("xml", "http", "json", "multiprocessing"),
        ]
    )
    max_per_class: int | None = positive(400)
    text_field: str = "text"
    label_field: str = "label"
    documents: str = choice("line", "block")
    tokenizer: str = choice("bpe", "char")
    vocab_size: int = bounded(2000, ge=3)
    max_length: int | None = positive(None)  # None: sized from the train texts
    length_coverage: float = bounded(0.95, gt=0, le=1)
    max_auto_length: int = positive(512)
    augment: TextAugmentConfig = field(default_factory=TextAugmentConfig)


@dataclass
class PairsDataConfig(DataConfig):
    modality: str = "pairs"
    source: str = choice("dates", "tsv", "csv", "jsonl")
    num_examples: int = positive(20000)
    source_field: str = "source"
    target_field: str = "target"
    tokenizer: str = choice("char", "bpe")
    vocab_size: int = bounded(2000, ge=3)
    shared_vocab: bool = False
    max_source_length: int = positive(64)
    max_target_length: int = positive(64)
    batch_size: int = positive(128)


DATA = {
    "image": ImageDataConfig,
    "sequence": SequenceDataConfig,
    "text": TextDataConfig,
    "pairs": PairsDataConfig,
}


# ---------------------------------------------------------------- task
@dataclass
class OptimizerConfig:
    name: str = choice("adamw", "sgd")
    lr: float = bounded(3e-3, gt=0)
    weight_decay: float = bounded(0.01, ge=0)
    betas: list[float] = bounded(factory=lambda: [0.9, 0.999], ge=0, lt=1)
    momentum: float = probability(0.9)
    nesterov: bool = False


@dataclass
class SchedulerConfig:
    name: str = choice("cosine", "constant")
    warmup_steps: int = bounded(50, ge=0)
    min_lr_ratio: float = bounded(0.0, ge=0, le=1)


@dataclass
class ClassifyTaskConfig:
    name: str = "classify"
    label_smoothing: float = probability(0.0)
    on_nonfinite: str = choice("stop", "skip")
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


@dataclass
class SelfSupervisedTaskConfig:
    """What every pretraining objective shares; `name` picks the objective."""

    name: str = ""
    on_nonfinite: str = choice("stop", "skip")
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


@dataclass
class LMTaskConfig(SelfSupervisedTaskConfig):
    name: str = "lm"


@dataclass
class ForecastTaskConfig(SelfSupervisedTaskConfig):
    name: str = "forecast"


@dataclass
class MLMTaskConfig(SelfSupervisedTaskConfig):
    name: str = "mlm"
    mask_ratio: float = bounded(0.15, gt=0, lt=1)


@dataclass
class ReconstructTaskConfig(SelfSupervisedTaskConfig):
    name: str = "reconstruct"
    mask_ratio: float = bounded(0.5, gt=0, lt=1)


@dataclass
class TranslateTaskConfig:
    name: str = "translate"
    label_smoothing: float = probability(0.0)
    beam_size: int = positive(1)
    length_penalty: float = bounded(0.6, ge=0)
    on_nonfinite: str = choice("stop", "skip")
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


@dataclass
class ContrastiveTaskConfig(SelfSupervisedTaskConfig):
    name: str = "contrastive"
    temperature: float = bounded(0.2, gt=0)
    projection_dim: int = positive(64)


TASKS = {
    "classify": ClassifyTaskConfig,
    "lm": LMTaskConfig,
    "mlm": MLMTaskConfig,
    "forecast": ForecastTaskConfig,
    "reconstruct": ReconstructTaskConfig,
    "translate": TranslateTaskConfig,
    "contrastive": ContrastiveTaskConfig,
}


# ---------------------------------------------------------------- stages
@dataclass
class PretrainConfig:
    task: Any = None  # a self-supervised TASKS entry, checked by archlab.config.pipeline
    # overrides of `trainer` for this stage (None: as in `trainer`)
    trainer: Any = field(default_factory=lambda: {"max_epochs": None, "max_steps": None})
    data: Any = None  # overrides of `data` for this stage (None: the finetune data's inputs)


@dataclass
class FinetuneConfig:
    init_from: str | None = None
    freeze_epochs: int = bounded(0, ge=0)
    lr_mult: float = bounded(1.0, gt=0)
    layer_decay: float = bounded(1.0, gt=0, le=1)
    linear_probe: bool = False


# ---------------------------------------------------------------- trainer, logging, callbacks
# Strategies that shard the model across GPUs (Lightning runs them on CUDA only).
SHARDED = ("fsdp", "deepspeed")


@dataclass
class FSDPConfig:
    """`trainer.strategy=fsdp` only."""

    sharding_strategy: str = choice("FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD", "NO_SHARD")
    auto_wrap_blocks: bool = True
    activation_checkpointing: bool = False
    cpu_offload: bool = False
    state_dict_type: str = choice("full", "sharded")


@dataclass
class DeepSpeedConfig:
    """`trainer.strategy=deepspeed` only."""

    stage: int = choice(2, 1, 3)
    offload_optimizer: bool = False
    offload_parameters: bool = False


@dataclass
class TrainerConfig:
    accelerator: str = choice("auto", "cpu", "gpu", "cuda", "mps")
    devices: Any = 1
    num_nodes: int = positive(1)
    strategy: str = choice("auto", "ddp", "ddp_spawn", "fsdp", "deepspeed")
    precision: str = choice("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true")
    sync_batchnorm: bool = False
    fsdp: FSDPConfig = field(default_factory=FSDPConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    max_epochs: int | None = bounded(None, ge=-1)  # None: sized from the data (budget)
    max_steps: int = bounded(-1, ge=-1)
    max_time: str | None = None
    min_epochs: int | None = bounded(None, ge=0)
    gradient_clip_val: float | None = bounded(None, ge=0)
    accumulate_grad_batches: int = positive(1)
    log_every_n_steps: int = positive(10)
    check_val_every_n_epoch: int = positive(1)
    val_check_interval: Any = None
    num_sanity_val_steps: int = bounded(2, ge=-1)
    deterministic: Any = False
    benchmark: bool | None = None
    enable_progress_bar: bool = True
    enable_model_summary: bool = False
    fast_dev_run: Any = False
    overfit_batches: Any = bounded(0.0, ge=0)  # int: batches, float: share of them
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    profiler: str | None = None


@dataclass
class TensorBoardLoggerConfig:
    """No options: present under `logger` means TensorBoard logs."""


@dataclass
class CSVLoggerConfig:
    """No options."""


@dataclass
class MLflowLoggerConfig:
    tracking_uri: str | None = None
    experiment_name: str | None = None
    log_model: bool = True
    required: bool = True


@dataclass
class WandbLoggerConfig:
    mode: str = choice("offline", "online", "disabled")
    project: str | None = None
    entity: str | None = None
    log_model: bool = True


@dataclass
class LoggerConfig:
    """Each logger whose node is present logs; `logger=[tensorboard,mlflow]` selects two."""

    tensorboard: TensorBoardLoggerConfig | None = None
    csv: CSVLoggerConfig | None = None
    mlflow: MLflowLoggerConfig | None = None
    wandb: WandbLoggerConfig | None = None


@dataclass
class CheckpointConfig:
    monitor: str = "val/acc"
    mode: str = choice("max", "min")
    save_top_k: int = bounded(1, ge=-1)
    every_n_train_steps: int = bounded(500, ge=0)


@dataclass
class EarlyStoppingConfig:
    enabled: bool | None = None  # None: auto-sized epochs at a constant lr (config.budget)
    monitor: str = "val/loss"
    mode: str = choice("min", "max")
    patience: int | None = bounded(None, ge=0)  # None: a fifth of the epochs, at least 5
    min_delta: float = bounded(0.0, ge=0)


@dataclass
class LMSamplesConfig:
    prompts: int = bounded(3, ge=0)
    prompt_tokens: int = positive(8)
    new_tokens: int = positive(32)
    temperature: float = bounded(1.0, ge=0)


@dataclass
class CallbacksConfig:
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    lr_monitor: bool = True
    lm_samples: LMSamplesConfig = field(default_factory=LMSamplesConfig)
    progress_refresh_rate: int = bounded(10, ge=0)


@dataclass
class BudgetConfig:
    """How null (auto) budget knobs are sized from the data: archlab.config.budget."""

    min_examples: int = bounded(19000, ge=0)
    min_epochs: int = positive(20)
    batch_fraction: float = bounded(0.1, gt=0, le=1)
    min_batch_size: int = positive(8)
    max_batch_size: int = positive(64)
    scale_lr: bool = False
    small_val: int = bounded(50, ge=0)
    transformer_clip: float = bounded(1.0, ge=0)
    rnn_token_dropout: float = probability(0.1)


@dataclass
class PathsConfig:
    root: str = "outputs"


@dataclass
class TrainConfig:
    name: str = "${model.name}-${data.modality}"
    seed: int = 42
    model: Any = None
    data: Any = None
    task: Any = None
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(
        default_factory=lambda: LoggerConfig(tensorboard=TensorBoardLoggerConfig())
    )
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    test_after_fit: bool = True
    num_threads: int | None = positive(None)
    stages: list[str] = field(default_factory=list)
    stage: str | None = None
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    compile: bool = False
    plan: bool = False
    plan_memory_gb: float | None = bounded(None, gt=0)
