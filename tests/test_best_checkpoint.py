"""The best checkpoint: a tie goes to the later epoch, a worse epoch never replaces it."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from archlab.checkpointing.best import LaterOnTies


class _Scripted(pl.LightningModule):
    """Logs a scripted val/acc per epoch, as a saturating metric would."""

    def __init__(self, accuracies: list[float]) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.accuracies = accuracies

    def training_step(self, batch, _):
        return self.layer(batch[0]).sum()

    def validation_step(self, batch, _):
        self.log("val/acc", self.accuracies[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _best_epoch(tmp_path, accuracies: list[float]) -> int:
    data = DataLoader(TensorDataset(torch.ones(4, 1)), batch_size=2)
    callback = LaterOnTies(dirpath=tmp_path, filename="best", monitor="val/acc", mode="max")
    trainer = pl.Trainer(
        max_epochs=len(accuracies),
        callbacks=[callback],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(_Scripted(accuracies), data, data)
    return torch.load(callback.best_model_path, weights_only=True)["epoch"]


def test_a_tie_goes_to_the_later_checkpoint(tmp_path) -> None:
    assert _best_epoch(tmp_path, [0.9, 1.0, 1.0, 1.0]) == 3


def test_a_worse_epoch_does_not_replace_the_best(tmp_path) -> None:
    assert _best_epoch(tmp_path, [0.9, 1.0, 0.95, 0.8]) == 1
