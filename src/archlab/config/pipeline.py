"""Checks for objectives and stages: which objective fits which model and modality, and the
`stages` / `stage` / `pretrain` / `finetune` settings, before any data is read."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from archlab.config.schema import TASKS, FinetuneConfig, TrainerConfig
from archlab.errors import ConfigError

STAGES = ("pretrain", "finetune")
SELF_SUPERVISED = ("lm", "mlm", "forecast", "reconstruct")
# Objective -> modalities it is meant for.
_MODALITIES = {
    "classify": ("image", "sequence", "text"),
    "lm": ("text",),
    "mlm": ("text",),
    "forecast": ("sequence",),
    "reconstruct": ("image", "sequence"),
    "translate": ("pairs",),
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
