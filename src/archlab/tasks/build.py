"""The data module and task (LightningModule) a validated config describes, for any objective.

A classifier with `finetune.init_from` set starts its stem + backbone from that checkpoint
and reads its data with that checkpoint's tokenizer / normalisation statistics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from archlab.config.pipeline import SELF_SUPERVISED, transfer_mismatch
from archlab.data import build_datamodule
from archlab.data.base import ArrayDataModule
from archlab.data.pairs import PairsDataModule
from archlab.errors import CheckpointError
from archlab.models import build_classifier
from archlab.models.pretrain import build_pretrainer, unit_span
from archlab.models.seq2seq import build_translator
from archlab.tasks.classify import ClassificationTask
from archlab.tasks.finetune import FinetuneTask
from archlab.tasks.pretrain import PretrainTask
from archlab.tasks.transfer import input_transforms, load_source, transfer_weights
from archlab.tasks.translate import TranslateTask


def finetuning(cfg: DictConfig) -> bool:
    """Whether the classifier needs `FinetuneTask` (any finetune setting off its default)."""
    tuning = cfg.finetune
    return bool(
        tuning.init_from
        or tuning.freeze_epochs
        or tuning.linear_probe
        or tuning.lr_mult != 1.0
        or tuning.layer_decay != 1.0
    )


def build_task(
    cfg: DictConfig,
    datamodule: ArrayDataModule,
    hparams: dict,
    source: tuple[Path, dict[str, Any]] | None = None,
) -> pl.LightningModule:
    """The task for `cfg` on set-up `datamodule`; `source`: a checkpoint (path, contents) whose
    stem + backbone the classifier starts from."""
    spec = datamodule.spec
    if isinstance(datamodule, PairsDataModule):
        return _translator(cfg, datamodule, hparams, source)
    if cfg.task.name in SELF_SUPERVISED:
        model = build_pretrainer(cfg.model, spec, cfg.task.name, cfg.task.get("projection_dim", 64))
        return PretrainTask(model, spec, unit_span(cfg.model, spec), cfg.task, hparams)
    model = build_classifier(cfg.model, spec, datamodule.num_classes)
    if not finetuning(cfg):
        return ClassificationTask(model, datamodule.num_classes, cfg.task, hparams)
    report = transfer_weights(model, source[1], source[0]) if source else None
    return FinetuneTask(model, datamodule.num_classes, cfg.task, hparams, cfg.finetune, report)


def _translator(
    cfg: DictConfig,
    datamodule: PairsDataModule,
    hparams: dict,
    source: tuple[Path, dict[str, Any]] | None,
) -> TranslateTask:
    model = build_translator(
        cfg.model, datamodule.spec, datamodule.target_vocab_size, datamodule.target_length
    )
    report = transfer_weights(model, source[1], source[0]) if source else None
    if report is not None:
        print("\n".join(report.lines()))
    bos, eos = datamodule.bos_id, datamodule.eos_id
    max_len = datamodule.codec.max_decode_length
    return TranslateTask(model, cfg.task, hparams, bos, eos, max_len)


def check_transfer(cfg: DictConfig, source: tuple[Path, dict[str, Any]]) -> None:
    """CheckpointError when the checkpoint's model was trained on data `cfg.data` is not
    (another modality, channel count, feature count or tokenizer kind)."""
    trained = (source[1].get("hyper_parameters") or {}).get("data")
    if not isinstance(trained, dict) or "modality" not in trained:
        return  # not an archlab run's checkpoint: the weight shapes are checked instead
    reason = transfer_mismatch(OmegaConf.create(trained), cfg.data)
    if reason:
        raise CheckpointError(
            f"finetune.init_from={cfg.finetune.init_from} cannot be finetuned on data="
            f"{cfg.data.modality} (source={cfg.data.source}): {reason}."
        )


def build_run(cfg: DictConfig, hparams: dict) -> tuple[ArrayDataModule, pl.LightningModule]:
    """Data module (set up for fitting) and task for `cfg`; hparams go into checkpoints."""
    datamodule = build_datamodule(cfg.data, seed=cfg.seed, end_of_text=cfg.task.name == "lm")
    source = load_source(cfg.finetune.init_from) if cfg.finetune.init_from else None
    if source is not None and isinstance(datamodule, PairsDataModule):
        datamodule.adopt_encoder(source[1])
    elif source is not None:
        check_transfer(cfg, source)
        transforms = input_transforms(source[1], type(datamodule).__qualname__)
        if transforms:
            datamodule.load_state_dict(transforms)
    datamodule.setup("fit")
    return datamodule, build_task(cfg, datamodule, hparams, source)
