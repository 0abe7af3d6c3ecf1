"""An Optuna search's space, written in Hydra's sweep syntax: `interval(a, b)` (tags `log`,
`int`), `choice(a, b, ...)`, `range(a, b[, step])`, or `a,b,c` on the command line.

Kept apart from the study code so the pre-flight check reads it without importing Optuna.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep

from archlab.errors import ConfigError


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{task: {optimizer: {lr: ...}}}` (a command-line override's shape) as
    `{"task.optimizer.lr": ...}` (a search config's)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def override_lines(params: Mapping[str, Any]) -> list[str]:
    """A search config's `params` as command-line overrides (`key=interval(a, b)` ...)."""
    return [f"{key}={value}" for key, value in flatten(params).items()]


@dataclass(frozen=True)
class Dimension:
    """One swept key of the search space."""

    key: str
    sweep: ChoiceSweep | RangeSweep | IntervalSweep

    def suggest(self, trial: Any) -> Any:
        """The value an `optuna.Trial` picks for this key."""
        sweep = self.sweep
        if isinstance(sweep, IntervalSweep):
            log = "log" in sweep.tags
            if "int" in sweep.tags:
                return trial.suggest_int(self.key, int(sweep.start), int(sweep.end), log=log)
            return trial.suggest_float(self.key, sweep.start, sweep.end, log=log)
        if isinstance(sweep, RangeSweep) and all(
            isinstance(v, int) for v in (sweep.start, sweep.stop, sweep.step)
        ):
            return trial.suggest_int(self.key, sweep.start, sweep.stop - 1, step=sweep.step)
        values = list(sweep.list) if isinstance(sweep, ChoiceSweep) else list(sweep.range())
        return trial.suggest_categorical(self.key, values)


def parse_space(
    params: dict[str, Any], arguments: Sequence[str]
) -> tuple[list[Dimension], list[str]]:
    """The swept dimensions and the fixed overrides of `params` (the search config) and the
    command line's `arguments` (`key=a,b` sweeps too; the command line wins)."""
    lines = override_lines(params) + list(arguments)
    try:
        parsed: list[Override] = OverridesParser.create().parse_overrides(lines)
    except Exception as error:  # Hydra's parser raises its own error types
        raise ConfigError(f"Cannot read the search space: {error}") from None
    swept: dict[str, Dimension] = {}
    fixed: dict[str, str] = {}
    for override in parsed:
        key = override.get_key_element()
        swept.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            swept[key] = Dimension(key, override.value())
        else:
            fixed[key] = override.input_line
    if not swept:
        raise ConfigError(
            "The Optuna search has nothing to search: set hydra.sweeper.params (e.g. "
            "'task.optimizer.lr: tag(log, interval(1e-4, 1e-2))') or pass a swept override."
        )
    return list(swept.values()), list(fixed.values())
