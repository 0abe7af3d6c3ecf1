"""Compose and validate the command line's config before Hydra starts a run, so a typo fails
fast, with the closest valid key, and leaves no run directory behind."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf

from archlab.config.paths import config_dir
from archlab.config.run_names import register_resolvers
from archlab.config.search_space import override_lines
from archlab.config.validate import validate
from archlab.errors import ConfigError

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


def compose_config(
    config_name: str, overrides: Sequence[str], with_hydra: bool = False
) -> DictConfig:
    """The composed config for `overrides`, as Hydra would compose it for a run (and with
    Hydra's own `hydra` node, when `with_hydra`)."""
    overrides = list(overrides)
    register_resolvers()  # conf/train.yaml's, which Hydra resolves while composing
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        for _ in range(len(overrides) + 1):
            try:
                return compose(config_name, overrides=overrides, return_hydra_config=with_hydra)
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
    """A sweep's overrides with each swept value (a list, range or interval) replaced by its
    first value."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as ex:
        raise ConfigError(str(ex).strip().splitlines()[0]) from None
    first = []
    for override in parsed:
        key = override.get_key_element()
        value = override.value()
        if isinstance(value, IntervalSweep):
            start = int(value.start) if "int" in value.tags else value.start
            first.append(f"{key}={start}")
        elif override.is_sweep_override():
            first.append(f"{key}={next(override.sweep_string_iterator())}")
        else:
            first.append(override.input_line)
    return first


def _with_search_space(overrides: list[str], hydra_overrides: list[str]) -> list[str]:
    """A search's first trial: the overrides plus a value of each of the sweeper's `params`
    (an Optuna search keeps its space in the config, out of the command line's reach)."""
    hydra = compose_config("train", [*overrides, *hydra_overrides], with_hydra=True).hydra
    params = OmegaConf.select(hydra, "sweeper.params")
    params = OmegaConf.to_container(params) if isinstance(params, DictConfig) else {}
    space = override_lines(params)
    return [*overrides, *_first_of_each_sweep(space)] if space else overrides


def preflight(argv: Sequence[str]) -> DictConfig | None:
    """Check the overrides of a run or a sweep (its first job) before Hydra starts; returns
    that validated config (None where there is no run to check)."""
    overrides, hydra_overrides = [], []
    is_sweep = False
    args = iter(argv)
    for arg in args:
        is_sweep = is_sweep or arg in ("-m", "--multirun")
        if arg.split("=", 1)[0] in _NO_CHECK:
            return None
        if arg in _TAKES_VALUE:
            next(args, None)
        elif arg.lstrip("+~").startswith(("hydra.", "hydra/")):
            hydra_overrides.append(arg)
        elif not arg.startswith("-"):
            overrides.append(arg)
    first = _first_of_each_sweep(overrides)
    if is_sweep:
        first = _with_search_space(first, hydra_overrides)
    return validate(compose_config("train", first))
