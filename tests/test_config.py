"""Every config option composes and validates; bad values fail with a message naming the key."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from archlab.config.paths import config_dir
from archlab.config.preflight import compose_config
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


def test_yaml_defaults_equal_schema_defaults() -> None:
    """The schema and conf/ must not drift: composing with no overrides equals the YAML."""
    cfg = validate(compose_config("train", []))
    raw = OmegaConf.load(CONF / "model" / "cnn.yaml")
    assert cfg.model.channels == raw.channels
    assert cfg.trainer.max_epochs == OmegaConf.load(CONF / "trainer" / "default.yaml").max_epochs


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
