"""Translation: teacher-forced cross-entropy for training; greedy or beam search for val and
test, scored by exact match, token accuracy, BLEU and chrF; example translations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import TensorBoardLogger
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.text import CHRFScore, SacreBLEUScore

from archlab.models.decoding import translate
from archlab.tasks.base import ArchlabTask

NUM_EXAMPLES = 8  # example translations shown per split: the first ones, so the same each time


class TranslationMetrics(nn.Module):
    """Exact match, BLEU (sacrebleu's 13a tokenisation) and chrF over decoded strings."""

    def __init__(self) -> None:
        super().__init__()
        self.exact_match = MeanMetric()
        self.bleu = SacreBLEUScore(tokenize="13a")
        self.chrf = CHRFScore(n_word_order=0)  # chrF proper, as sacrebleu reports it (not chrF++)

    def update(self, outputs: list[str], references: list[str]) -> None:
        same = torch.tensor([o == r for o, r in zip(outputs, references, strict=True)])
        self.exact_match.update(same.float())
        self.bleu.update(outputs, [[r] for r in references])
        self.chrf.update(outputs, [[r] for r in references])

    def compute(self) -> dict[str, torch.Tensor]:
        return {
            "exact_match": self.exact_match.compute(),
            "bleu": self.bleu.compute() * 100,
            "chrf": self.chrf.compute() * 100,
        }

    def reset(self) -> None:
        for metric in (self.exact_match, self.bleu, self.chrf):
            metric.reset()


def _table(rows: list[dict[str, str]]) -> str:
    """A markdown table for TensorBoard's text tab."""
    lines = ["| source | reference | output |", "| --- | --- | --- |"]
    for row in rows:
        cells = [row[k].replace("|", "\\|") for k in ("source", "reference", "output")]
        mark = "" if row["output"] == row["reference"] else " ✗"
        lines.append(f"| {cells[0]} | {cells[1]} | {cells[2]}{mark} |")
    return "\n".join(lines)


class TranslateTask(ArchlabTask):
    """Trains a `Seq2Seq` on (source ids, framed target ids) batches (see
    `archlab.data.pairs`); `bos`/`eos` frame targets, `max_len` bounds decoding."""

    def __init__(
        self,
        model: nn.Module,
        task: Mapping[str, Any],
        hparams: dict,
        bos: int,
        eos: int,
        max_len: int,
    ) -> None:
        super().__init__(model, task, hparams)
        self.bos, self.eos, self.max_len = bos, eos, max_len
        self.metrics = nn.ModuleDict({"val": TranslationMetrics(), "test": TranslationMetrics()})
        self.examples: dict[str, list[dict[str, str]]] = {}

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        """(B, S) source ids -> (B, <= max_len) generated ids, by the configured search."""
        size, alpha = self.task_cfg["beam_size"], self.task_cfg["length_penalty"]
        return translate(self.model, source, self.bos, self.eos, self.max_len, size, alpha)

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor], smoothing: float):
        source, target = batch
        logits = self.model(source, target[:, :-1])
        gold = target[:, 1:]
        loss = F.cross_entropy(
            logits.flatten(0, 1), gold.flatten(), ignore_index=0, label_smoothing=smoothing
        )
        valid = gold != 0
        accuracy = (logits.argmax(-1) == gold)[valid].float().mean()
        return loss, accuracy

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int):
        loss, _acc = self._loss(batch, self.task_cfg["label_smoothing"])
        return self.training_loss(loss)

    def _eval_step(self, split: str, batch: tuple[torch.Tensor, torch.Tensor], index: int):
        source, target = batch
        loss, accuracy = self._loss(batch, 0.0)
        self.log_eval(f"{split}/loss", loss, len(source), prog_bar=True)
        self.log_eval(f"{split}/token_acc", accuracy, len(source))
        data = self.trainer.datamodule
        outputs = [data.decode_target(ids) for ids in self(source).tolist()]
        references = [data.decode_target(ids) for ids in target.tolist()]
        self.metrics[split].update(outputs, references)
        if index == 0:
            self.examples[split] = [
                {"source": data.decode_source(s), "reference": r, "output": o}
                for s, r, o in zip(
                    source[:NUM_EXAMPLES].tolist(), references, outputs, strict=False
                )
            ]

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> None:
        self._eval_step("val", batch, index)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> None:
        self._eval_step("test", batch, index)

    def _epoch_end(self, split: str) -> None:
        metrics = self.metrics[split]
        values = metrics.compute()
        metrics.reset()
        for name, value in values.items():
            self.log(
                f"{split}/{name}",
                value,
                logger=self.logs_eval_curves,
                prog_bar=name == "exact_match" and split == "val",
            )
        if isinstance(self.logger, TensorBoardLogger) and self.trainer.is_global_zero:
            table = _table(self.examples.get(split, []))
            self.logger.experiment.add_text(f"translations/{split}", table, self.global_step)

    def on_validation_epoch_end(self) -> None:
        self._epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._epoch_end("test")

    def final_record(self) -> dict[str, Any]:
        return {"examples": self.examples}
