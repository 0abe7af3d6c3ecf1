"""Compose and validate the command line's config before Hydra starts a run, so a typo fails
fast, with the closest valid key, and leaves no run directory behind."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig

from archlab.config.validate import validate
from archlab.errors import ConfigError
from archlab.paths import config_dir

_NOT_IN_CONFIG = "Could not override '"
_MISSING_OPTION = re.compile(r"Could not find '([^']+)/([^'/]+)'")
# Flags after which there is no run to check, or a config tree other than archlab's.
_NO_CHECK = ("-h", "--help", "--hydra-help", "--version", "-i", "--info", "-sc",
             "--shell-completion", "-cp", "--config-path", "-cd", "--config-dir", "-cn",
             "--config-name", "--experimental-rerun")  # fmt: skip
_TAKES_VALUE = ("-c", "--cfg", "-p", "--package")


def _unknown_option(message: str) -> ConfigError | None:
    match = _MISSING_OPTION.search(message)
    if not match:
        return None
    group, option = match.groups()
    options = sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
    close = difflib.get_close_matches(option, options, n=1)
    hint = f" Did you mean '{group}={close[0]}'?" if close else ""
    return ConfigError(
        f"Unknown option '{option}' for config group '{group}'.{hint} "
        f"Options: {', '.join(options)}."
    )


def compose_config(config_name: str, overrides: Sequence[str]) -> DictConfig:
    """The composed config for `overrides`, as Hydra would compose it for a run."""
    overrides = list(overrides)
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        for _ in range(len(overrides) + 1):
            try:
                return compose(config_name, overrides=overrides)
            except MissingConfigException as ex:
                raise _unknown_option(str(ex)) or ConfigError(str(ex).strip()) from None
            except HydraException as ex:
                message = str(ex)
                if not message.startswith(_NOT_IN_CONFIG):
                    raise _unknown_option(message) or ConfigError(message.strip()) from None
                # An override of a key the config lacks: add it, so that validation can name
                # the key and its closest valid neighbour.
                key = message[len(_NOT_IN_CONFIG) :].split("'", 1)[0]
                overrides = [f"+{o}" if o.split("=", 1)[0] == key else o for o in overrides]
    raise ConfigError(f"Cannot compose the config from: {' '.join(overrides)}")


def _first_of_each_sweep(overrides: Sequence[str]) -> list[str]:
    """A sweep's overrides with each swept value replaced by its first value."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as ex:
        raise ConfigError(str(ex).strip().splitlines()[0]) from None
    first = []
    for override in parsed:
        if override.is_sweep_override():
            first.append(f"{override.get_key_element()}={next(override.sweep_string_iterator())}")
        else:
            first.append(override.input_line)
    return first


def preflight(argv: Sequence[str]) -> DictConfig | None:
    """Check the overrides of a run or a sweep (its first job) before Hydra starts; returns
    that validated config (None where there is no run to check)."""
    overrides = []
    args = iter(argv)
    for arg in args:
        if arg.split("=", 1)[0] in _NO_CHECK:
            return None
        if arg in _TAKES_VALUE:
            next(args, None)
        elif not arg.startswith("-") and not arg.lstrip("+~").startswith(("hydra.", "hydra/")):
            overrides.append(arg)
    return validate(compose_config("train", _first_of_each_sweep(overrides)))
