"""The best checkpoint on val: the latest within one standard error of the best score (a tie,
for any metric), never one clearly worse."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from archlab.checkpointing.best import LatestWithinNoise


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


def _best_epoch(tmp_path, accuracies: list[float], val_examples: int | None = None) -> int:
    data = DataLoader(TensorDataset(torch.ones(4, 1)), batch_size=2)
    callback = LatestWithinNoise(
        dirpath=tmp_path, filename="best", monitor="val/acc", mode="max", val_examples=val_examples
    )
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


def test_a_later_epoch_within_one_standard_error_replaces_the_peak(tmp_path) -> None:
    # An RNN on the digits: 0.933 at epoch 1, then 0.917-0.922 to the end of the schedule.
    # On 180 val examples that is two examples (one standard error: 0.019): the last is kept.
    scores = [0.40, 0.933, 0.917, 0.922, 0.922]
    assert _best_epoch(tmp_path / "a", scores, val_examples=180) == 4
    # Measured on 10,000 examples the same gap is real (one standard error: 0.0025).
    assert _best_epoch(tmp_path / "b", scores, val_examples=10_000) == 1


def test_the_margin_is_from_the_peak_so_small_drops_do_not_add_up(tmp_path) -> None:
    # 0.915 is within 0.019 of the peak 0.93, but 0.90 is not, though within 0.019 of 0.915.
    assert _best_epoch(tmp_path, [0.90, 0.93, 0.915, 0.90, 0.89], val_examples=180) == 2


def test_a_perfect_peak_still_allows_one_example(tmp_path) -> None:
    # p(1 - p) = 0 at 1.0: the margin is one example's worth (1/180), not zero.
    assert _best_epoch(tmp_path / "a", [0.9, 1.0, 179 / 180], val_examples=180) == 2
    assert _best_epoch(tmp_path / "b", [0.9, 1.0, 178 / 180], val_examples=180) == 1
