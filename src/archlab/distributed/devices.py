"""Reading `trainer.devices`; light (no torch), since the SLURM resolvers use it at start-up."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf


def explicit_device_count(devices: Any) -> int | None:
    """How many devices `trainer.devices` names (a list, or a number); None for auto or -1."""
    if OmegaConf.is_list(devices) or isinstance(devices, list | tuple):
        return len(devices)
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, int) and devices >= 0:
        return devices
    return None
