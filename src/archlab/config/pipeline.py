"""Checks for objectives and stages: which objective fits which model and modality, and the
`stages` / `stage` / `pretrain` / `finetune` settings, before any data is read."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from archlab.config.schema import DATA, TASKS, FinetuneConfig, TrainerConfig
from archlab.errors import ConfigError

STAGES = ("pretrain", "finetune")
SELF_SUPERVISED = ("lm", "mlm", "forecast", "reconstruct", "contrastive")
# Sources of inputs without labels, per modality: for self-supervised objectives only.
UNLABELLED_SOURCES = {
    "image": ("corpus", "glyphs"),
    "sequence": ("corpus", "glyphs"),
    "text": ("corpus", "python_docs"),
}
# Objective -> modalities it is meant for.
_MODALITIES = {
    "classify": ("image", "sequence", "text"),
    "lm": ("text",),
    "mlm": ("text",),
    "forecast": ("sequence",),
    "reconstruct": ("image", "sequence"),
    "translate": ("pairs",),
    "contrastive": ("image",),
}
# Objectives that predict the next position from the past only.
_CAUSAL = ("lm", "forecast")


def _unfit_reason(objective: str, model: DictConfig, modality: str) -> str | None:
    """Why `objective` cannot train `model` on `modality`, or None when it can."""
    if modality not in _MODALITIES[objective]:
        return f"{objective} is not an objective for {modality} data"
    if objective in _CAUSAL and model.name == "cnn":
        return f"{objective} predicts the next position, which archlab's pooling CNN cannot"
    if objective in _CAUSAL and model.name == "rnn" and model.bidirectional:
        return f"a bidirectional RNN reads the future, so {objective} would be trivial"
    return None


def fitting_objectives(model: DictConfig, modality: str) -> list[str]:
    """The objectives (task names) that can train `model` on `modality` data."""
    return [t for t in _MODALITIES if _unfit_reason(t, model, modality) is None]


def check_objective(objective: str, model: DictConfig, modality: str, key: str) -> None:
    """ConfigError naming the objectives that fit, for an impossible pairing."""
    reason = _unfit_reason(objective, model, modality)
    if reason:
        fits = ", ".join(fitting_objectives(model, modality))
        raise ConfigError(
            f"'{key}={objective}' cannot train model={model.name} on data={modality}: "
            f"{reason}. Objectives that fit: {fits}."
        )


def check_labelled(data: DictConfig, key: str = "data") -> None:
    """ConfigError for a classifier asked to learn from a source without labels."""
    if data.source in UNLABELLED_SOURCES[data.modality]:
        fits = [t for t in SELF_SUPERVISED if data.modality in _MODALITIES[t]]
        raise ConfigError(
            f"{key}.source={data.source} has no labels, and task=classify learns from labels: "
            f"give it a labelled source, or pretrain on it (+pretrain.data.source={data.source} "
            "with stages=[pretrain,finetune]) or train a self-supervised task on it "
            f"(task={', task='.join(fits)})."
        )


def _channels(data: DictConfig) -> int:
    """Image channels a data section yields, known before reading it."""
    return {"digits": 1, "glyphs": 1, "mnist": 1, "cifar10": 3}.get(data.source, data.channels)


def _features(data: DictConfig) -> int:
    """Values per step of a series data section, known before reading it."""
    if data.source in ("digits", "glyphs"):
        return 8 if data.layout == "rows" else 1
    return 1 if data.source == "ucr" else data.num_features


def _describe(data: DictConfig) -> str:
    return f"{data.modality} data (source={data.source})"


def transfer_mismatch(pretrain: DictConfig, finetune: DictConfig) -> str | None:
    """Why a model pretrained on `pretrain` data cannot be finetuned on `finetune` data, or
    None when its stem, backbone and input transforms carry over."""
    if pretrain.modality != finetune.modality:
        return f"a model of {_describe(pretrain)} cannot read {_describe(finetune)}"
    if pretrain.modality == "image" and _channels(pretrain) != _channels(finetune):
        return (
            f"{_describe(pretrain)} has {_channels(pretrain)} channel(s), {_describe(finetune)} "
            f"has {_channels(finetune)}"
        )
    if pretrain.modality == "sequence" and _features(pretrain) != _features(finetune):
        return (
            f"{_describe(pretrain)} has {_features(pretrain)} feature(s) per step, "
            f"{_describe(finetune)} has {_features(finetune)}"
        )
    if pretrain.modality == "text" and pretrain.tokenizer != finetune.tokenizer:
        return (
            f"{_describe(pretrain)} is read with a {pretrain.tokenizer} tokenizer, "
            f"{_describe(finetune)} with a {finetune.tokenizer} one (the finetuning reuses the "
            "pretraining's tokenizer)"
        )
    return None


def _type_pretrain_data(cfg: DictConfig, merge: Any, check_values: Any) -> None:
    """`pretrain.data` (settings over `data`) typed by its modality's schema, checked to
    transfer to `data`."""
    own = cfg.pretrain.data
    if own is None:
        return
    if not isinstance(own, DictConfig):
        raise ConfigError(
            f"pretrain.data={own} must be a data section (settings over `data`), e.g. "
            "+pretrain.data.source=corpus +pretrain.data.path=<file or folder>."
        )
    modality = own.get("modality") or cfg.data.modality
    if modality not in DATA:
        raise ConfigError(f"'pretrain.data.modality={modality}' is not one of: {', '.join(DATA)}.")
    base = OmegaConf.to_container(cfg.data) if modality == cfg.data.modality else {}
    typed = merge("pretrain.data", DATA[modality], {**base, **OmegaConf.to_container(own)})
    check_values("pretrain.data", DATA[modality], typed)
    reason = transfer_mismatch(typed, cfg.data)
    if reason:
        raise ConfigError(
            f"The pretrain stage's data (pretrain.data) cannot transfer to the finetune stage's "
            f"(data): {reason}. Pretrain on data the finetuned model can read."
        )
    cfg.pretrain.data = typed


def _type_pretrain_task(cfg: DictConfig, merge: Any, check_values: Any) -> None:
    node = cfg.pretrain.task
    if not isinstance(node, DictConfig):
        fits = [t for t in fitting_objectives(cfg.model, cfg.data.modality) if t != "classify"]
        raise ConfigError(
            "The pretrain stage has no objective: choose one that fits "
            f"model={cfg.model.name} on data={cfg.data.modality}, e.g. "
            f"+task@pretrain.task={fits[0] if fits else 'reconstruct'} "
            f"(fitting: {', '.join(fits) or 'none'})."
        )
    name = node.get("name")
    if name not in SELF_SUPERVISED:
        raise ConfigError(
            f"'pretrain.task.name={name}' is not a self-supervised objective; choose one of: "
            f"{', '.join(SELF_SUPERVISED)}."
        )
    cfg.pretrain.task = merge("pretrain.task", TASKS[name], node)
    check_values("pretrain.task", TASKS[name], cfg.pretrain.task)
    _type_pretrain_data(cfg, merge, check_values)
    check_objective(name, cfg.model, cfg.data.modality, "pretrain.task")
    own = {k: v for k, v in cfg.pretrain.trainer.items() if v is not None}
    trainer = merge("pretrain.trainer", TrainerConfig, own)
    check_values("pretrain.trainer", TrainerConfig, trainer)


def check_pipeline(cfg: DictConfig, merge: Any, check_values: Any) -> None:
    """Objectives fit the model and modality; stages are known; the pretrain stage is typed.

    `merge` and `check_values` are the schema checks of `archlab.config.validate`.
    """
    check_values("finetune", FinetuneConfig, cfg.finetune)
    check_objective(cfg.task.name, cfg.model, cfg.data.modality, "task")
    if cfg.task.name == "classify":
        check_labelled(cfg.data)
    unknown = [s for s in cfg.stages if s not in STAGES]
    if unknown or len(set(cfg.stages)) != len(cfg.stages):
        raise ConfigError(
            f"stages={list(cfg.stages)} must list distinct stages among: {', '.join(STAGES)}."
        )
    if cfg.stage is not None and cfg.stage not in STAGES:
        raise ConfigError(f"'stage={cfg.stage}' is not one of: {', '.join(STAGES)}.")
    stages = [cfg.stage] if cfg.stage else list(cfg.stages)
    if "pretrain" in stages:
        _type_pretrain_task(cfg, merge, check_values)
    if "finetune" in stages and cfg.task.name != "classify":
        raise ConfigError(
            f"The finetune stage trains `task`, which must be classify (now task={cfg.task.name});"
            " the pretraining objective goes in pretrain.task."
        )
    if "finetune" in stages and "pretrain" not in stages and not cfg.finetune.init_from:
        raise ConfigError(
            "The finetune stage runs without the pretrain stage here: set finetune.init_from="
            "<pretrain run directory or .ckpt>, or run both (stages=[pretrain,finetune], no "
            "stage=)."
        )
    tuning = cfg.finetune
    if tuning.init_from and cfg.task.name not in ("classify", "translate"):
        raise ConfigError(
            "finetune.init_from applies to task=classify and task=translate (now "
            f"task={cfg.task.name})."
        )
    active = tuning.freeze_epochs or tuning.linear_probe or tuning.lr_mult != 1.0
    if (active or tuning.layer_decay != 1.0) and not (tuning.init_from or "finetune" in cfg.stages):
        raise ConfigError(
            "finetune.freeze_epochs / linear_probe / lr_mult / layer_decay act on pretrained "
            "weights: set finetune.init_from=<run dir or .ckpt> or stages=[pretrain,finetune]."
        )
