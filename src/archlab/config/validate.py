"""Checks a composed config against the schemas before any work, with messages a user can act on."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from archlab.config.pipeline import check_pipeline
from archlab.config.schema import DATA, MODELS, SHARDED, TASKS, LoggerConfig, TrainConfig
from archlab.errors import ConfigError

# Sections whose schema depends on a selector key inside them.
_SELECTED = {"model": ("name", MODELS), "data": ("modality", DATA), "task": ("name", TASKS)}


def _closest(key: str, valid: list[str], prefix: str = "") -> str:
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    return f" Did you mean '{prefix}{match[0]}'?" if match else ""


def _section_schema(schema: Any, name: str) -> Any:
    """The dataclass of field `name` (`X` or `X | None`), or None for a plain field."""
    hint = typing.get_type_hints(schema)[name]
    for kind in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(kind):
            return kind
    return None


def _valid_keys(schema: Any, path: list[str]) -> list[str]:
    """Field names at `path` inside a dataclass schema."""
    for part in path:
        schema = _section_schema(schema, part)
    return [f.name for f in dataclasses.fields(schema)]


def _merge(section: str, schema: Any, node: Any) -> DictConfig:
    """`node` merged onto its schema; unknown keys and wrong types become ConfigError."""
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), node)
    except ConfigKeyError as ex:
        parts = str(ex.full_key).split(".")
        prefix = ".".join([section, *parts[:-1]]) if section else ".".join(parts[:-1])
        where = f"{prefix}.{parts[-1]}" if prefix else parts[-1]
        valid = _valid_keys(schema, parts[:-1])
        raise ConfigError(
            f"Unknown config key '{where}'.{_closest(parts[-1], valid, prefix and prefix + '.')} "
            f"Valid keys{f' under {prefix!r}' if prefix else ''}: {', '.join(valid)}."
        ) from None
    except ValidationError as ex:
        where = ".".join(p for p in (section, str(ex.full_key)) if p)
        reason = str(ex.msg).splitlines()[0]
        raise ConfigError(f"Wrong value for '{where}': {reason}.") from None


_BOUNDS = {
    "ge": (">=", lambda v, b: v >= b),
    "gt": (">", lambda v, b: v > b),
    "le": ("<=", lambda v, b: v <= b),
    "lt": ("<", lambda v, b: v < b),
}


def _check_bounds(key: str, value: Any, metadata: Any) -> None:
    items = value if isinstance(value, ListConfig | list) else [value]
    for item in items:
        for name, (sign, holds) in _BOUNDS.items():
            if name in metadata and item is not None and not holds(item, metadata[name]):
                raise ConfigError(
                    f"'{key}={value}' is out of range: it must be {sign} {metadata[name]}."
                )


def _check_values(section: str, schema: Any, node: DictConfig) -> None:
    for f in dataclasses.fields(schema):
        value = node[f.name]
        _check_bounds(f"{section}.{f.name}", value, f.metadata)
        if "choices" in f.metadata and value not in f.metadata["choices"]:
            options = ["null" if c is None else str(c) for c in f.metadata["choices"]]
            raise ConfigError(
                f"'{section}.{f.name}={value}' is not one of: {', '.join(options)}."
                f"{_closest(str(value), options)}"
            )
        inner = _section_schema(schema, f.name)
        if inner is not None and value is not None:
            _check_values(f"{section}.{f.name}", inner, value)


def _check_combinations(cfg: DictConfig) -> None:
    """Rules that span several keys (static: a sweep can be checked on a login node)."""
    trainer = cfg.trainer
    if trainer.strategy in SHARDED and trainer.accelerator == "cpu":
        raise ConfigError(
            f"trainer.strategy={trainer.strategy} requires a GPU accelerator (Lightning runs "
            f"{trainer.strategy} on CUDA only), but trainer.accelerator=cpu. On CPU use "
            "trainer=ddp (several processes) or trainer=cpu."
        )
    data = cfg.data
    if data.modality in ("text", "pairs") and data.tokenizer == "bpe" and data.vocab_size < 258:
        raise ConfigError(
            f"data.vocab_size={data.vocab_size} is too small for the byte-level BPE tokenizer "
            "(it needs >= 258: 256 bytes plus <pad> and <unk>); "
            "raise it or use data.tokenizer=char."
        )
    model = cfg.model
    if model.name == "transformer" and model.d_model % model.num_heads:
        raise ConfigError(
            f"model.d_model={model.d_model} is not divisible by model.num_heads="
            f"{model.num_heads}: each attention head gets d_model / num_heads dimensions."
        )


def _selected_loggers(node: Any) -> Any:
    """The `logger` node; a config saved before loggers could be combined (a checkpoint's, a
    run's) names its one logger in `logger.name`."""
    if isinstance(node, DictConfig) and isinstance(node.get("name"), str):
        return {} if node.name == "none" else {node.name: {}}
    return {} if node is None else node


def validate(cfg: DictConfig) -> DictConfig:
    """The composed config, typed by the schemas; raises ConfigError naming the offending key."""
    try:
        plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    except OmegaConfBaseException as ex:
        raise ConfigError(f"Cannot resolve config value '{ex.full_key}': {ex.msg}") from None
    missing = sorted(OmegaConf.missing_keys(plain))
    if missing:
        raise ConfigError(
            f"Missing config value '{missing[0]}': set it on the command line, "
            f"e.g. {missing[0]}=<value>."
        )
    typed = {}
    for section, (selector, schemas) in _SELECTED.items():
        node = plain.get(section)
        if not isinstance(node, DictConfig):
            raise ConfigError(
                f"Config section '{section}' is missing; choose one, e.g. {section}=..."
            )
        kind = node.get(selector)
        if kind not in schemas:
            raise ConfigError(
                f"'{section}.{selector}={kind}' is not one of: {', '.join(schemas)}."
                f"{_closest(str(kind), list(schemas))}"
            )
        typed[section] = _merge(section, schemas[kind], node)
        _check_values(section, schemas[kind], typed[section])
        plain[section] = None
    # Merged alone: the selected loggers replace the default one instead of joining it.
    logger = _merge("logger", LoggerConfig, _selected_loggers(plain.get("logger")))
    plain.pop("logger", None)
    root = _merge("", TrainConfig, plain)
    root.logger = logger
    for section in ("trainer", "logger", "callbacks", "paths"):
        schema = type(getattr(TrainConfig(), section))
        _check_values(section, schema, root[section])
    for section, node in typed.items():
        root[section] = node
    _check_combinations(root)
    check_pipeline(root, _merge, _check_values)
    OmegaConf.set_readonly(root, True)
    return root
