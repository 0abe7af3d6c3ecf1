"""Compose and validate the command line's config before Hydra starts a run, so a typo fails
fast, with the closest valid key, and leaves no run directory behind."""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig

from archlab.config.validate import validate
from archlab.errors import ConfigError
from archlab.paths import config_dir

_NOT_IN_CONFIG = "Could not override '"


def compose_config(config_name: str, overrides: Sequence[str]) -> DictConfig:
    """The composed config for `overrides`, as Hydra would compose it for a run."""
    overrides = list(overrides)
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        for _ in range(len(overrides) + 1):
            try:
                return compose(config_name, overrides=overrides)
            except HydraException as ex:
                message = str(ex)
                if not message.startswith(_NOT_IN_CONFIG):
                    raise ConfigError(message.strip()) from None
                # An override of a key the config lacks: add it, so that validation can name
                # the key and its closest valid neighbour.
                key = message[len(_NOT_IN_CONFIG) :].split("'", 1)[0]
                overrides = [f"+{o}" if o.split("=", 1)[0] == key else o for o in overrides]
    raise ConfigError(f"Cannot compose the config from: {' '.join(overrides)}")


def preflight(argv: Sequence[str]) -> None:
    """Validate a plain run's overrides; Hydra's own flags (-m, --cfg, --help ...) pass through."""
    if any(arg.startswith("-") for arg in argv):
        return
    validate(compose_config("train", [a for a in argv if not a.startswith("hydra.")]))
