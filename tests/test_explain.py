"""Attributions: on generated tasks whose label depends only on a known region (an image
quadrant, a window of steps, one token), most of the attribution mass falls inside it; and
`archlab-explain` writes PNGs for a trained run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import run_cli
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator as ea

from archlab.errors import ConfigError
from archlab.models import build_classifier
from archlab.models.spec import ImageSpec, SequenceSpec, TextSpec
from archlab.records.attributions import METHODS, attribute

CNN = {
    "name": "cnn",
    "channels": [16, 16],
    "kernel_size": 3,
    "batch_norm": False,
    "dropout": 0.0,
    "embed_dim": 16,
    "fc_dims": [32],
    "pooling": "flatten",
}
TRANSFORMER = {
    "name": "transformer",
    "d_model": 32,
    "num_heads": 2,
    "num_layers": 1,
    "ff_dim": 64,
    "dropout": 0.0,
    "positional": "learned",
    "patch_size": 2,
    "fc_dims": [],
    "pooling": "flatten",
}


def _image_task(n: int, g: torch.Generator):
    """8x8 noise; the label: is the top-left 4x4 quadrant brighter than zero on average?"""
    x = torch.randn(n, 1, 8, 8, generator=g)
    region = torch.zeros(8, 8, dtype=torch.bool)
    region[:4, :4] = True
    return x, (x[:, 0, :4, :4].mean((1, 2)) > 0).long(), region


def _series_task(n: int, g: torch.Generator):
    """32 steps of noise; the label: is the mean of steps 20-27 above zero?"""
    x = torch.randn(n, 32, 1, generator=g)
    region = torch.zeros(32, dtype=torch.bool)
    region[20:28] = True
    return x, (x[:, 20:28, 0].mean(1) > 0).long(), region


def _token_task(n: int, g: torch.Generator):
    """12 random tokens (ids 2-11); the label: is token 5 one of ids 2-6?"""
    x = torch.randint(2, 12, (n, 12), generator=g)
    region = torch.zeros(12, dtype=torch.bool)
    region[5] = True
    return x, (x[:, 5] < 7).long(), region


CASES = {
    "image quadrant": (_image_task, ImageSpec(1, 8, 8), CNN),
    "series window": (_series_task, SequenceSpec(32, 1), CNN),
    "one token": (_token_task, TextSpec(12, 12, 0), TRANSFORMER),
}


@pytest.fixture(scope="module", params=list(CASES))
def trained(request):
    """A small classifier trained on the case's task (plain PyTorch: the attributions are
    what is under test), with held-out inputs and the region."""
    make, spec, cfg = CASES[request.param]
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y, region = make(2048, g)
    model = build_classifier(cfg, spec, 2)
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    for _epoch in range(8):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            batch = order[i : i + 64]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    test_x, test_y, _ = make(256, g)
    with torch.no_grad():
        accuracy = (model(test_x).argmax(-1) == test_y).float().mean()
    assert accuracy >= 0.85, f"{request.param}: the model did not learn its task ({accuracy})"
    background = x[:256] if x.dtype == torch.long else None
    return model, test_x[:32], region, background


@pytest.mark.parametrize("method", METHODS)
def test_most_attribution_falls_in_the_region_the_label_depends_on(trained, method) -> None:
    model, x, region, background = trained
    if background is not None and method != "integrated_gradients":
        with pytest.raises(ConfigError, match="integrated gradients"):
            attribute(model, x, method, background)
        return
    scores, _ = attribute(model, x, method, background)
    assert scores.shape == (len(x), *region.shape)
    assert (scores >= 0).all()
    inside = scores[:, region.numpy()].sum() / scores.sum()
    share = float(region.float().mean())
    assert inside > 0.5, f"{inside:.2f} of the mass inside a region of {share:.2f} of the input"


def test_archlab_explain_writes_pngs_and_tensorboard_shows_attributions(train_cli) -> None:
    result, run_dir = train_cli(
        "trainer.max_epochs=1", "trainer.limit_train_batches=3", "test_after_fit=false"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    events = ea.EventAccumulator(str(run_dir / "tensorboard")).Reload()
    assert "attributions/val" in events.Tags()["images"]
    out = run_dir / "pngs"
    done = run_cli("archlab.cli.explain", str(run_dir), "test:0", "val:3", "--output", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 2
    for png in pngs:
        assert Image.open(png).size[0] > 100
    bad = run_cli("archlab.cli.explain", str(run_dir), "test:99999")
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("archlab-explain: error:")
    assert "test split has" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
