"""In TensorBoard's HParams table, the keys a command line set (those a sweep varies) lead."""

from __future__ import annotations

from omegaconf import OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.records.dashboards import log_hparams


def test_overridden_keys_come_first_in_the_hparams_table(tmp_path) -> None:
    overrides = ("model.dropout=0.3", "data=sequence", "task.optimizer.lr=0.01")
    cfg = validate(compose_config("train", list(overrides)))
    logger = TensorBoardLogger(tmp_path, name="tb", version="", default_hp_metric=False)
    log_hparams([logger], OmegaConf.to_container(cfg), {"val/acc": 0.5}, overrides=overrides)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/experiment"]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    names = [info.name for info in experiment.hparam_infos]
    assert names[:3] == ["model/dropout", "data/modality", "task/optimizer/lr"]
    assert "callbacks/checkpoint/every_n_train_steps" in names[3:]
    assert [m.name.tag for m in experiment.metric_infos] == ["final/val/acc"]
