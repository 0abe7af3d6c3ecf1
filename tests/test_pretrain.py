"""Self-supervised objectives: each trains on every modality and architecture it fits, through
the real `train` path (Lightning Trainer, checkpoints, metrics.json); the losses learn; the
model/objective pairings that cannot work are refused at config time, before Hydra starts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from archlab.config.job import JobContext
from archlab.config.pipeline import fitting_objectives
from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.errors import ConfigError
from archlab.models.pretrain import build_pretrainer
from archlab.models.spec import ImageSpec, SequenceSpec, TextSpec
from archlab.run.fit import fit
from archlab.run.stages import stage_config

TINY = {
    "cnn": ["model.channels=[8,8]", "model.embed_dim=16"],
    "rnn": ["model.hidden_size=16", "model.embed_dim=16"],
    "transformer": ["model.d_model=16", "model.num_heads=2", "model.num_layers=1",
                    "model.ff_dim=32"],
}  # fmt: skip
DATA = {
    "image": [],
    "sequence": [],
    "text": ["data.max_per_class=40", "data.tokenizer=char", "data.max_length=32"],
}
# One architecture per (objective, modality) by default; every other pairing in `make test-all`.
_DEFAULT = {
    ("text", "transformer", "lm"),
    ("text", "cnn", "mlm"),
    ("sequence", "rnn", "forecast"),
    ("sequence", "transformer", "reconstruct"),
    ("image", "transformer", "reconstruct"),
    ("image", "cnn", "contrastive"),
}
PAIRS = [
    pytest.param(*pair, marks=() if pair in _DEFAULT else pytest.mark.slow)
    for pair in [
        ("text", "transformer", "lm"),
        ("text", "transformer", "mlm"),
        ("text", "rnn", "lm"),
        ("text", "rnn", "mlm"),
        ("text", "cnn", "mlm"),
        ("sequence", "transformer", "forecast"),
        ("sequence", "transformer", "reconstruct"),
        ("sequence", "rnn", "forecast"),
        ("sequence", "rnn", "reconstruct"),
        ("sequence", "cnn", "reconstruct"),
        ("image", "transformer", "reconstruct"),
        ("image", "rnn", "reconstruct"),
        ("image", "cnn", "reconstruct"),
        ("image", "cnn", "contrastive"),
        ("image", "transformer", "contrastive"),
        ("image", "rnn", "contrastive"),
    ]
]  # fmt: skip


def _config(*overrides: str):
    return stage_config(validate(compose_config("train", list(overrides))), None)


@pytest.mark.parametrize(("modality", "model", "objective"), PAIRS)
def test_each_objective_trains_on_each_modality_it_fits(
    tmp_path: Path, modality: str, model: str, objective: str
) -> None:
    cfg = _config(
        f"model={model}", f"data={modality}", f"task={objective}", *TINY[model],
        *DATA[modality], "trainer.max_steps=3", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "task.scheduler.warmup_steps=0",
    )  # fmt: skip
    metrics = fit(cfg, tmp_path, JobContext(tmp_path))
    assert set(metrics) >= {"val/loss", "test/loss"}
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["global_step"] == 3
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize(
    ("modality", "model", "objective"),
    [
        ("text", "cnn", "mlm"),
        pytest.param("sequence", "rnn", "forecast", marks=pytest.mark.slow),
        pytest.param("image", "transformer", "reconstruct", marks=pytest.mark.slow),
        pytest.param("image", "cnn", "contrastive", marks=pytest.mark.slow),
    ],
)  # fmt: skip
def test_pretraining_lowers_the_validation_loss(
    tmp_path: Path, modality: str, model: str, objective: str
) -> None:
    """Three epochs against one: the objective is learnable and the task optimises it."""
    common = (f"model={model}", f"data={modality}", f"task={objective}", *TINY[model],
              *DATA[modality], "data.batch_size=16", "trainer.enable_progress_bar=false",
              "trainer.enable_model_summary=false", "test_after_fit=false",
              "task.scheduler.name=constant", "task.scheduler.warmup_steps=0")  # fmt: skip
    short = fit(
        _config(*common, "trainer.max_steps=1"), tmp_path / "short", JobContext(tmp_path / "short")
    )
    long = fit(
        _config(*common, "trainer.max_epochs=3"), tmp_path / "long", JobContext(tmp_path / "long")
    )
    assert long["val/loss"] < 0.95 * short["val/loss"]


def test_heads_predict_every_position_in_the_input_layout() -> None:
    """CNN heads predict whole spans per output position, cropped back to the input size."""
    cnn = {"name": "cnn", "channels": [4, 4, 4], "kernel_size": 3, "batch_norm": True,
           "dropout": 0.0, "embed_dim": 8, "fc_dims": [], "pooling": "mean"}  # fmt: skip
    image = build_pretrainer(cnn, ImageSpec(3, 10, 12), "reconstruct")
    assert image(torch.randn(2, 3, 10, 12)).shape == (2, 3, 10, 12)
    series = build_pretrainer(cnn, SequenceSpec(13, 2), "reconstruct")
    assert series(torch.randn(2, 13, 2)).shape == (2, 13, 2)
    text = build_pretrainer(cnn, TextSpec(30, 11), "mlm")
    assert text(torch.randint(1, 30, (2, 11))).shape == (2, 11, 30)


def test_next_token_transformer_is_causal() -> None:
    """Changing a later token never changes the predictions for earlier positions."""
    cfg = {"name": "transformer", "d_model": 16, "num_heads": 2, "num_layers": 2, "ff_dim": 32,
           "dropout": 0.0, "positional": "sinusoidal", "patch_size": 2, "fc_dims": [],
           "pooling": "mean", "causal": False}  # fmt: skip
    net = build_pretrainer(cfg, TextSpec(50, 12), "lm").eval()
    x = torch.randint(2, 50, (1, 12))
    y = x.clone()
    y[0, 8] = (x[0, 8] + 1) % 48 + 2
    assert torch.allclose(net(x)[:, :8], net(y)[:, :8], atol=1e-6)
    assert not torch.allclose(net(x)[:, 8:], net(y)[:, 8:])


def test_an_impossible_pairing_is_refused_on_the_command_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_cli(
        "archlab.train", "model=rnn", "model.bidirectional=true", "data=text", "task=lm",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "archlab-train: error: 'task=lm' cannot train model=rnn on data=text: a bidirectional "
        "RNN reads the future, so lm would be trivial. Objectives that fit: classify, mlm."
    )
    assert not run_dir.exists()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model=cnn", "data=image", "task=lm"],
         "lm is not an objective for image data. Objectives that fit: classify, reconstruct, "
         "contrastive."),
        (["model=cnn", "data=sequence", "task=forecast"],
         "Objectives that fit: classify, reconstruct."),
        (["model=transformer", "data=text", "stages=[pretrain,finetune]"],
         "The pretrain stage has no objective: choose one that fits model=transformer on "
         "data=text, e.g. +task@pretrain.task=lm (fitting: lm, mlm)."),
        (["model=rnn", "model.bidirectional=true", "data=sequence", "stages=[pretrain,finetune]",
          "+task@pretrain.task=forecast"],
         "'pretrain.task=forecast' cannot train model=rnn on data=sequence"),
        (["model=rnn", "data=sequence", "stages=[pretrain,finetune]",
          "+task@pretrain.task=classify"],
         "'pretrain.task.name=classify' is not a self-supervised objective"),
        (["model=rnn", "data=sequence", "stage=finetune"],
         "set finetune.init_from=<pretrain run directory or .ckpt>"),
        (["finetune.freeze_epochs=2"], "act on pretrained weights"),
    ],
)  # fmt: skip
def test_impossible_pairings_and_stage_settings_are_refused(
    overrides: list[str], expected: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        validate(compose_config("train", overrides))


def test_every_architecture_has_an_objective_on_every_modality() -> None:
    from omegaconf import OmegaConf

    for model in ("cnn", "rnn", "transformer"):
        for bidirectional in (False, True):
            node = OmegaConf.create({"name": model, "bidirectional": bidirectional})
            for modality in ("image", "sequence", "text"):
                assert set(fitting_objectives(node, modality)) - {"classify"}, (model, modality)
