"""Batch augmentation: what each op does to a batch, seeded by (seed, epoch, batch, rank) only,
off unless configured, and used by the text and series modules in a real fit."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import Callback

from archlab.config.budget import apply_budget, resolve_budget
from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.data import build_datamodule
from archlab.data.augment import (
    augment_active,
    augment_images,
    augment_series,
    augment_tokens,
    batch_generator,
)
from archlab.models import build_classifier
from archlab.tasks.classify import ClassificationTask

OFF_IMAGE = {"flip": False, "crop_scale": 1.0, "rotate": 0.0, "translate": 0.0, "color": 0.0}
OFF_SERIES = {"jitter": 0.0, "scale": 0.0, "crop": 1.0}


def _g(batch: int = 0, epoch: int = 0, rank: int = 0) -> torch.Generator:
    return batch_generator(torch.device("cpu"), 42, epoch, batch, rank)


def test_defaults_in_the_configs_change_nothing():
    for data in ("image", "sequence", "text"):
        cfg = validate(compose_config("train", (f"data={data}",)))
        assert not augment_active(cfg.data.augment), data
    assert augment_active({**OFF_IMAGE, "flip": True})


def test_flip_mirrors_some_images_and_leaves_the_others():
    x = torch.randn(64, 3, 6, 6)
    out = augment_images(x, {**OFF_IMAGE, "flip": True}, _g(), {})
    flipped = [torch.allclose(o, i.flip(-1), atol=1e-5) for o, i in zip(out, x, strict=True)]
    same = [torch.allclose(o, i, atol=1e-5) for o, i in zip(out, x, strict=True)]
    assert all(f or s for f, s in zip(flipped, same, strict=True))
    assert 10 < sum(flipped) < 54


def test_draws_depend_on_seed_epoch_batch_and_rank_only():
    x = torch.randn(16, 1, 8, 8)
    cfg = {**OFF_IMAGE, "crop_scale": 0.5, "rotate": 15.0, "translate": 0.1, "color": 0.3}
    a = augment_images(x, cfg, _g(batch=3), {})
    torch.manual_seed(123)  # global RNG state plays no part
    assert torch.equal(a, augment_images(x, cfg, _g(batch=3), {}))
    for other in (_g(batch=4), _g(batch=3, epoch=1), _g(batch=3, rank=1)):
        assert not torch.equal(a, augment_images(x, cfg, other, {}))


def test_colour_jitter_works_on_the_raw_pixel_scale():
    """A constant image keeps a constant value: brightness scales it, contrast has nothing to
    stretch; in raw units the factor stays within 1 +- color."""
    stats = {"mean": torch.tensor([100.0]), "std": torch.tensor([50.0])}
    raw = torch.full((32, 1, 4, 4), 150.0)
    x = (raw - 100) / 50
    out = augment_images(x, {**OFF_IMAGE, "color": 0.2}, _g(), stats) * 50 + 100
    factor = out.flatten(1) / 150
    assert torch.allclose(factor, factor[:, :1].expand_as(factor), atol=1e-4)
    assert factor.min() >= 0.8 - 1e-4 and factor.max() <= 1.2 + 1e-4
    assert factor.std() > 0.01


def test_series_crop_scale_and_jitter():
    x = torch.linspace(0, 1, 20).repeat(8, 1)[:, :, None]
    cropped = augment_series(x, {**OFF_SERIES, "crop": 0.5}, _g())
    assert cropped.shape == x.shape
    spans = cropped[:, -1, 0] - cropped[:, 0, 0]  # a window of half the ramp, stretched
    assert torch.allclose(spans, torch.full_like(spans, 9 / 19), atol=1e-5)
    scaled = augment_series(x, {**OFF_SERIES, "scale": 0.3}, _g())
    ratio = scaled[:, 1:, 0] / x[:, 1:, 0]
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-5)
    noisy = augment_series(x, {**OFF_SERIES, "jitter": 0.1}, _g())
    assert 0.07 < (noisy - x).std() < 0.13


def test_token_dropout_never_touches_padding():
    ids = torch.randint(2, 50, (64, 30))
    ids[:, 20:] = 0
    out = augment_tokens(ids, {"token_dropout": 0.25}, _g(), pad_id=0, unk_id=1)
    assert torch.equal(out[:, 20:], ids[:, 20:])
    dropped = (out[:, :20] == 1).float().mean()
    assert 0.2 < dropped < 0.3
    kept = out[:, :20] != 1
    assert torch.equal(out[:, :20][kept], ids[:, :20][kept])


class Inputs(Callback):
    def __init__(self) -> None:
        self.train: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, _, batch, __) -> None:
        self.train.append(batch[0].clone())


_SMALL_TEXT_RNN = (
    "data=text", "model=rnn", "data.max_per_class=20", "data.max_length=32",
    "model.hidden_size=8",
)  # fmt: skip


def _text_module(cfg):
    pl.seed_everything(cfg.seed, verbose=False)
    dm = build_datamodule(cfg.data, seed=cfg.seed)
    dm.setup("fit")
    return dm


def _unk_rates(cfg, dm, steps: int) -> tuple[float, list[float]]:
    """Share of <unk> among the stored train tokens, and in each batch of a real fit."""
    model = build_classifier(cfg.model, dm.spec, dm.num_classes)
    task = ClassificationTask(model, dm.num_classes, cfg.task, hparams=OmegaConf.to_container(cfg))
    seen = Inputs()
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=steps, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, callbacks=[seen],
        limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(task, datamodule=dm)
    tok = dm.tokenizer

    def rate(ids: torch.Tensor) -> float:
        return ((ids == tok.unk_id).sum() / (ids != tok.pad_id).sum()).item()

    return rate(dm.tensors["train"][0]), [rate(batch) for batch in seen.train]


def test_text_token_dropout_applies_to_training_batches_in_a_fit():
    cfg = validate(compose_config("train", (*_SMALL_TEXT_RNN, "data.augment.token_dropout=0.3")))
    stored, rates = _unk_rates(cfg, _text_module(cfg), steps=2)
    assert all(rate > stored + 0.2 for rate in rates)


def test_an_rnn_text_classifier_drops_tokens_by_default_once_the_budget_resolves_it():
    """The data module is built from the user's config (token_dropout null: nothing to do yet)
    and then, as `archlab-train` does, handed the resolved config: its training batches then
    carry budget.rnn_token_dropout's <unk> tokens."""
    cfg = validate(compose_config("train", _SMALL_TEXT_RNN))
    assert cfg.data.augment.token_dropout is None
    dm = _text_module(cfg)
    assert not dm.augments
    budget = resolve_budget(cfg, len(dm.datasets["train"]), len(dm.datasets["val"]))
    dm.use_config(apply_budget(cfg, budget).data)
    assert dm.augments
    stored, rates = _unk_rates(cfg, dm, steps=4)
    assert all(stored + 0.03 < rate < stored + 0.2 for rate in rates), (stored, rates)
