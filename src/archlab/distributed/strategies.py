"""Scale settings: the `trainer` config's strategy options become Lightning strategy objects,
and combinations the hardware cannot run are refused before any work."""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.strategies import DeepSpeedStrategy, FSDPStrategy

from archlab.config.schema import SHARDED
from archlab.distributed.devices import explicit_device_count
from archlab.errors import ConfigError
from archlab.models.transformer import Block

_STRATEGY_OPTIONS = ("fsdp", "deepspeed")
DEEPSPEED_INSTALL = "pip install 'archlab[deepspeed]'"


def _cuda_available() -> bool:
    return torch.cuda.is_available()


def check_environment(trainer: DictConfig) -> None:
    """What this machine must offer for the trainer config; called in the job, before data.
    A missing package first: installing it is the step that does not depend on the machine."""
    if trainer.strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(
            f"trainer.strategy=deepspeed needs the DeepSpeed package, which is not installed: "
            f"{DEEPSPEED_INSTALL}"
        )
    wants_gpu = trainer.accelerator in ("gpu", "cuda") or trainer.strategy in SHARDED
    if wants_gpu and not _cuda_available():
        why = (
            f"trainer.strategy={trainer.strategy} runs on CUDA GPUs only"
            if trainer.strategy in SHARDED
            else f"trainer.accelerator={trainer.accelerator} needs a CUDA GPU"
        )
        raise ConfigError(
            f"{why}, and this machine has none visible (torch.cuda.is_available() is False). "
            "Run on a GPU machine, or use trainer=cpu / trainer=ddp here."
        )


def _fsdp(options: DictConfig) -> Any:
    return FSDPStrategy(
        sharding_strategy=options.sharding_strategy,
        auto_wrap_policy={Block} if options.auto_wrap_blocks else None,
        activation_checkpointing_policy={Block} if options.activation_checkpointing else None,
        cpu_offload=options.cpu_offload,
        state_dict_type=options.state_dict_type,
    )


def _deepspeed(options: DictConfig) -> Any:
    return DeepSpeedStrategy(
        stage=options.stage,
        offload_optimizer=options.offload_optimizer,
        offload_parameters=options.offload_parameters,
    )


def trainer_arguments(trainer: DictConfig) -> dict[str, Any]:
    """`pl.Trainer` keyword arguments: the trainer config with its strategy options built."""
    arguments = OmegaConf.to_container(trainer)
    for key in _STRATEGY_OPTIONS:
        arguments.pop(key)
    if trainer.strategy == "fsdp":
        arguments["strategy"] = _fsdp(trainer.fsdp)
    elif trainer.strategy == "deepspeed":
        arguments["strategy"] = _deepspeed(trainer.deepspeed)
    return arguments


def processes_per_node(trainer: DictConfig) -> int:
    """How many processes the run needs on each machine: one per device, except ddp_spawn
    (Lightning spawns those itself)."""
    if trainer.strategy == "ddp_spawn":
        return 1
    count = explicit_device_count(trainer.devices)
    if count is not None:
        return count
    if trainer.accelerator != "cpu" and _cuda_available():  # auto or -1: every GPU
        return torch.cuda.device_count()
    return 1
