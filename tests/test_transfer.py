"""Weight transfer and finetuning controls, with real Lightning Trainers: the finetuned model
starts from the pretrained stem + backbone, a shape mismatch names the parameter and both
shapes, freezing stops every backbone update (batch-norm statistics included) for the
configured epochs, and learning rates follow lr_mult and layer_decay.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from archlab.config.job import JobContext
from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.errors import CheckpointError
from archlab.run.fit import fit
from archlab.run.stages import stage_config
from archlab.tasks.build import build_run
from archlab.tasks.finetune import layer_depths

QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
CNN = ["model=cnn", "data=image", "model.channels=[8,8]", "model.fc_dims=[16]", *QUIET]


def _config(*overrides: str):
    return stage_config(validate(compose_config("train", list(overrides))), None)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CNN pretrained by masked-patch reconstruction on the digits for a few steps."""
    run_dir = tmp_path_factory.mktemp("pretrain") / "run"
    fit(_config(*CNN, "task=reconstruct", "trainer.max_epochs=1"), run_dir, JobContext(run_dir))
    return run_dir


def _finetune(pretrained: Path, *overrides: str):
    cfg = _config(*CNN, f"finetune.init_from={pretrained}", *overrides)
    return cfg, *build_run(cfg, {})


def test_transfer_loads_stem_and_backbone_and_leaves_the_head_fresh(pretrained: Path) -> None:
    _, _, task = _finetune(pretrained)
    checkpoint = torch.load(pretrained / "checkpoints" / "best.ckpt", weights_only=True)
    saved = checkpoint["state_dict"]
    backbone = task.model.backbone.state_dict()
    assert backbone, "the CNN backbone has parameters"
    for name, value in backbone.items():
        assert torch.equal(value, saved[f"model.backbone.{name}"]), name
    report = task.transfer_report
    assert report.loaded == [
        "backbone.blocks.0.0", "backbone.blocks.0.1", "backbone.blocks.1.0", "backbone.blocks.1.1",
    ]  # fmt: skip
    assert report.missing == [] and report.unexpected == []
    assert report.head_left_out == ["head.proj"]
    assert report.checkpoint.endswith("best.ckpt")  # a run directory resolves to its best


def test_a_shape_mismatch_names_the_parameter_and_both_shapes(pretrained: Path) -> None:
    with pytest.raises(CheckpointError) as caught:
        _finetune(pretrained, "model.channels=[8,12]")
    message = str(caught.value)
    assert "'backbone.blocks.1.0.weight'" in message
    assert "(8, 8, 3, 3)" in message and "(12, 8, 3, 3)" in message


class _Snapshots(pl.Callback):
    """Backbone state (parameters and batch-norm buffers) and head weights at each epoch end."""

    def __init__(self) -> None:
        self.backbone: list[dict[str, torch.Tensor]] = []
        self.head: list[torch.Tensor] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        state = module.model.backbone.state_dict()
        self.backbone.append({k: v.clone() for k, v in state.items()})
        self.head.append(torch.cat([p.detach().flatten() for p in module.model.head.parameters()]))


def _fit(task: pl.LightningModule, datamodule: pl.LightningDataModule, epochs: int, root: Path):
    snapshots = _Snapshots()
    trainer = pl.Trainer(
        default_root_dir=root, max_epochs=epochs, limit_train_batches=5, limit_val_batches=1,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[snapshots],
    )  # fmt: skip
    trainer.fit(task, datamodule=datamodule)
    return trainer, snapshots


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_freezing_stops_backbone_updates_for_the_configured_epochs(
    pretrained: Path, tmp_path: Path
) -> None:
    _, datamodule, task = _finetune(pretrained, "finetune.freeze_epochs=2")
    start = {k: v.clone() for k, v in task.model.backbone.state_dict().items()}
    _, snap = _fit(task, datamodule, epochs=3, root=tmp_path)
    assert _same(snap.backbone[0], start) and _same(snap.backbone[1], start)
    assert any("running_mean" in k for k in start)  # batch-norm statistics stayed too
    assert not _same(snap.backbone[2], start)  # unfrozen in the third epoch
    assert not torch.equal(snap.head[0], snap.head[1])  # the head trained meanwhile


def test_a_linear_probe_trains_only_the_head(pretrained: Path, tmp_path: Path) -> None:
    _, datamodule, task = _finetune(pretrained, "finetune=linear_probe")
    start = {k: v.clone() for k, v in task.model.backbone.state_dict().items()}
    trainer, snap = _fit(task, datamodule, epochs=2, root=tmp_path)
    assert _same(snap.backbone[-1], start)
    head = {id(p) for p in task.model.head.parameters()}
    optimised = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert optimised == head


def test_learning_rates_follow_lr_mult_and_layer_decay(pretrained: Path, tmp_path: Path) -> None:
    _, datamodule, task = _finetune(
        pretrained, "finetune.lr_mult=0.5", "finetune.layer_decay=0.5", "task.optimizer.lr=0.01"
    )
    trainer, _ = _fit(task, datamodule, epochs=1, root=tmp_path)
    lr_of = {
        id(p): group["initial_lr"]
        for group in trainer.optimizers[0].param_groups
        for p in group["params"]
    }
    named = dict(task.model.named_parameters())
    # Two blocks: the top one (blocks.1) is 1 layer from the head, blocks.0 two.
    assert lr_of[id(named["head.mlp.0.weight"])] == pytest.approx(0.01)
    assert lr_of[id(named["backbone.blocks.1.0.weight"])] == pytest.approx(0.01 * 0.5 * 0.5)
    assert lr_of[id(named["backbone.blocks.0.0.weight"])] == pytest.approx(0.01 * 0.5 * 0.25)


def test_layer_depths_count_layers_from_the_head() -> None:
    transformer = ["stem.proj.weight", "backbone.positions.table.weight",
                   "backbone.blocks.0.attn.qkv.weight", "backbone.blocks.1.mlp.0.weight",
                   "backbone.norm.weight", "head.mlp.0.weight"]  # fmt: skip
    assert list(layer_depths(transformer).values()) == [3, 3, 2, 1, 1, 0]
    rnn = ["stem.proj.weight", "backbone.rnn.weight_ih_l0", "backbone.rnn.weight_hh_l1_reverse",
           "head.mlp.0.bias"]  # fmt: skip
    assert list(layer_depths(rnn).values()) == [3, 2, 1, 0]


def test_the_transfer_is_printed_and_recorded(pretrained: Path, tmp_path: Path) -> None:
    cfg = _config(*CNN, f"finetune.init_from={pretrained}", "trainer.max_steps=2")
    fit(cfg, tmp_path, JobContext(tmp_path))
    record = json.loads((tmp_path / "transfer.json").read_text())
    assert record["loaded"][0] == "backbone.blocks.0.0" and record["head_left_out"]
    from tensorboard.backend.event_processing import event_accumulator as ea

    events = ea.EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={ea.TENSORS: 0})
    events.Reload()
    text = events.Tensors("transfer/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "loaded (4): backbone.blocks.0.0" in text and "head_left_out (1): head.proj" in text
