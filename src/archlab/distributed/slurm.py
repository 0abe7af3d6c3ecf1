"""The SLURM job shape for `hydra/launcher=slurm`, derived from the trainer config.

Registered as OmegaConf resolvers, so that `conf/hydra/launcher/slurm.yaml` states the
shape in one place: one task per device (srun starts the ranks; ddp_spawn spawns its own),
and GPUs only for GPU trainers.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from archlab.distributed.devices import explicit_device_count


def _device_count(devices: Any) -> int:
    count = explicit_device_count(devices)
    if count is None:
        raise ValueError(
            f"trainer.devices={devices} under hydra/launcher=slurm: give a number of devices per "
            "node (e.g. trainer.devices=4), the job's shape is fixed at submission."
        )
    return max(count, 1)


def tasks_per_node(strategy: str, devices: Any) -> int:
    return 1 if strategy == "ddp_spawn" else _device_count(devices)


def gpus_per_node(accelerator: str, devices: Any) -> int | None:
    return None if accelerator == "cpu" else _device_count(devices)


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("archlab_tasks_per_node", tasks_per_node, replace=True)
    OmegaConf.register_new_resolver("archlab_gpus_per_node", gpus_per_node, replace=True)
