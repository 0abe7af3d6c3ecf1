"""Finetuning a classifier whose stem and backbone were pretrained: freezing, learning rates."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from archlab.records.dashboards import tensorboard_of
from archlab.records.run_record import write_json_atomic
from archlab.tasks.classify import ClassificationTask
from archlab.tasks.transfer import PRETRAINED_PARTS, TransferReport

TRANSFER_FILE = "transfer.json"
_LAYER = re.compile(r"^backbone\.(?:blocks\.(\d+)\.|rnn\.\w+_l(\d+)(?:_reverse)?$)")


def layer_depths(names: list[str]) -> dict[str, int]:
    """Distance of each parameter from the head: the head 0, the backbone's top layer 1, ...,
    the stem (and position table) deepest. Layers are transformer and CNN `blocks.<k>` and the
    RNN's `_l<k>` weights; the transformer's final norm sits with the top layer."""
    layer = {}
    for name in names:
        match = _LAYER.match(name)
        if match:
            layer[name] = int(match.group(1) or match.group(2))
    top = max(layer.values(), default=-1) + 1  # number of layers
    depths = {}
    for name in names:
        if not name.startswith(PRETRAINED_PARTS):
            depths[name] = 0
        elif name in layer:
            depths[name] = top - layer[name]
        elif name.startswith("backbone.") and not name.startswith("backbone.positions."):
            depths[name] = 1
        else:
            depths[name] = top + 1
    return depths


class FinetuneTask(ClassificationTask):
    """A `ClassificationTask` whose pretrained stem + backbone may be frozen for the first
    `freeze_epochs` epochs (or throughout: `linear_probe`) and learn at
    `lr x lr_mult x layer_decay ** depth`.

    Frozen parts get no gradient (so the optimizer leaves them, weight decay included) and are
    kept in eval mode (so batch-norm statistics do not move either).
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        task: Mapping[str, Any],
        hparams: dict,
        finetune: Mapping[str, Any],
        report: TransferReport | None,
    ) -> None:
        super().__init__(model, num_classes, task, hparams)
        self.finetune_cfg = finetune
        self.transfer_report = report
        if finetune["linear_probe"]:  # never in the optimizer
            self._freeze(True)

    def _pretrained(self) -> list[nn.Module]:
        return [self.model.stem, self.model.backbone]

    def _freeze(self, frozen: bool) -> None:
        for part in self._pretrained():
            part.requires_grad_(not frozen)
            if frozen:
                part.eval()

    def frozen_now(self) -> bool:
        return self.finetune_cfg["linear_probe"] or (
            self.current_epoch < self.finetune_cfg["freeze_epochs"]
        )

    def on_train_epoch_start(self) -> None:
        self._freeze(self.frozen_now())

    def on_validation_model_train(self) -> None:
        super().on_validation_model_train()  # back to train mode, frozen parts excepted
        self._freeze(self.frozen_now())

    def on_fit_start(self) -> None:
        if self.transfer_report is None or not self.trainer.is_global_zero:
            return
        text = "\n".join(self.transfer_report.lines())
        print(text)
        tensorboard = tensorboard_of(self.loggers)
        if tensorboard is not None:
            tensorboard.experiment.add_text("transfer", f"```\n{text}\n```", self.global_step)
        record = Path(self.trainer.default_root_dir) / TRANSFER_FILE
        write_json_atomic(record, self.transfer_report.as_dict())

    def param_groups(self) -> list[dict[str, Any]]:
        """One group per learning-rate scale (lr_mult, layer_decay) and weight-decay kind."""
        opt = self.task_cfg["optimizer"]
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        depths = layer_depths([n for n, _ in named])
        mult, decay = self.finetune_cfg["lr_mult"], self.finetune_cfg["layer_decay"]
        buckets: dict[tuple[float, bool], list[nn.Parameter]] = {}
        for name, param in named:
            scale = 1.0 if depths[name] == 0 else mult * decay ** depths[name]
            buckets.setdefault((scale, param.ndim >= 2), []).append(param)
        return [
            {
                "params": params,
                "lr": opt["lr"] * scale,
                "weight_decay": opt["weight_decay"] if decays else 0.0,
            }
            for (scale, decays), params in buckets.items()
        ]
