"""Every config option composes and validates; bad values fail with a message naming the key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from archlab.config.paths import config_dir
from archlab.config.preflight import compose_config
from archlab.config.schema import (
    DATA,
    MODELS,
    TASKS,
    CallbacksConfig,
    CSVLoggerConfig,
    FinetuneConfig,
    MLflowLoggerConfig,
    PretrainConfig,
    TensorBoardLoggerConfig,
    TrainConfig,
    TrainerConfig,
    WandbLoggerConfig,
)
from archlab.config.validate import validate
from archlab.errors import ConfigError

CONF = config_dir()


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "group",
    ["model", "data", "task", "trainer", "logger", "callbacks", "debug", "experiment", "finetune"],
)
def test_every_option_of_every_group_composes_and_validates(group: str) -> None:
    options = _options(group)
    assert options, f"conf/{group} has no options"
    # Objectives meant for one modality, with a model that fits them.
    fitting = {
        "lm": ["data=text", "model=transformer"],
        "mlm": ["data=text"],
        "forecast": ["data=sequence", "model=rnn"],
        "linear_probe": ["finetune.init_from=run"],
        "pairs": ["task=translate"],
        "translate": ["data=pairs"],
    }
    for option in options:
        overrides = [f"{group}={option}", *fitting.get(option, [])]
        cfg = validate(compose_config("train", overrides))
        assert cfg.model.name in ("cnn", "rnn", "transformer")
        assert cfg.data.modality in ("image", "sequence", "text", "pairs")


def test_every_knob_in_conf_is_commented() -> None:
    """Configs are the user's API: each key line carries a one-line explanation."""
    for path in CONF.rglob("*.yaml"):
        if path.parent.name in ("debug", "experiment") or path.name == "train.yaml":
            continue
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if not stripped or stripped.startswith(("#", "-", "defaults:")):
                continue
            key, _, value = stripped.partition(":")
            is_section = value.strip() == ""
            if not is_section and key not in ("name", "modality"):
                assert "#" in line, f"{path.relative_to(CONF)}: '{stripped}' has no comment"


# The option of each group that states the group's defaults; the others are variants over it.
_DEFAULT_OPTIONS = {
    "trainer": ("default", TrainerConfig),
    "callbacks": ("default", CallbacksConfig),
    "pretrain": ("default", PretrainConfig),
    "finetune": ("default", FinetuneConfig),
}
_LOGGERS = {
    "tensorboard": TensorBoardLoggerConfig,
    "csv": CSVLoggerConfig,
    "mlflow": MLflowLoggerConfig,
    "wandb": WandbLoggerConfig,
}
_SELECTED_SCHEMAS = {"model": ("name", MODELS), "data": ("modality", DATA), "task": ("name", TASKS)}


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in node.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _defaults_files() -> Iterator[tuple[Path, dict, Any]]:
    """(YAML file, its keys, the schema whose defaults it states)."""
    for group, (selector, schemas) in _SELECTED_SCHEMAS.items():
        for path in sorted((CONF / group).glob("*.yaml")):
            raw = OmegaConf.to_container(OmegaConf.load(path))
            yield path, raw, schemas[raw[selector]]
    for group, (option, schema) in _DEFAULT_OPTIONS.items():
        path = CONF / group / f"{option}.yaml"
        yield path, OmegaConf.to_container(OmegaConf.load(path)), schema
    for path in sorted((CONF / "logger").glob("*.yaml")):  # each logger's node, on its schema
        raw = OmegaConf.to_container(OmegaConf.load(path))
        for name, node in raw.items():
            yield path, node or {}, _LOGGERS[name]
    raw = OmegaConf.to_container(OmegaConf.load(CONF / "train.yaml"))
    for section in ("defaults", "hydra", "logger", *_DEFAULT_OPTIONS):
        raw.pop(section, None)
    yield CONF / "train.yaml", raw, TrainConfig


@pytest.mark.parametrize("path, raw, schema", list(_defaults_files()), ids=lambda v: str(v)[-30:])
def test_yaml_defaults_equal_schema_defaults(path: Path, raw: dict, schema: Any) -> None:
    """conf/ and the schemas state every default alike: code that builds a config from the
    schema gets the experiment the YAML describes."""
    defaults = OmegaConf.to_container(OmegaConf.structured(schema))
    for key, value in _leaves(raw):
        expected = defaults
        for part in key.split("."):
            expected = expected[part]
        assert value == expected, (
            f"{path.relative_to(CONF)}: {key} is {value!r} but the schema says {expected!r}"
        )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model.chanels=[8]"], ["model.chanels", "model.channels"]),
        (["+model.chanels=[8]"], ["model.chanels", "model.channels"]),
        (["trainer.max_epoch=3"], ["trainer.max_epoch", "trainer.max_epochs"]),
        (["task.optimizer.nmae=sgd"], ["task.optimizer.nmae", "task.optimizer.name"]),
        (["model.kernel_size=abc"], ["model.kernel_size", "abc"]),
        (["trainer.max_epochs=1.5"], ["trainer.max_epochs"]),
        (["model=rnn", "model.cell=lsmt"], ["model.cell=lsmt", "lstm"]),
        (["task.optimizer.name=adm"], ["adamw"]),
        (["data.path=???"], ["data.path"]),
        (["model=cnnn"], ["'cnnn'", "model=cnn"]),
        (["data.batch_size=0"], ["data.batch_size=0", ">= 1"]),
        (["task.optimizer.lr=-1"], ["task.optimizer.lr", "> 0"]),
        (["trainer.max_epochs=-5"], ["trainer.max_epochs=-5", ">= -1"]),
        (["model.channels=[8,0]"], ["model.channels"]),
        (["data=text", "data.vocab_size=100"], ["data.vocab_size=100", "data.tokenizer=char"]),
        (["+foo=1"], ["'foo'"]),
    ],
)
def test_bad_config_is_refused_with_a_message_naming_the_key(
    overrides: list[str], expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as error:
        validate(compose_config("train", overrides))
    for fragment in expected:
        assert fragment in str(error.value)


def test_validated_config_is_typed_and_read_only() -> None:
    cfg = validate(compose_config("train", ["model.kernel_size=5", "trainer.max_epochs=3"]))
    assert cfg.model.kernel_size == 5
    assert isinstance(cfg.trainer.max_epochs, int)
    with pytest.raises(Exception, match="read-only"):
        cfg.model.kernel_size = 7
