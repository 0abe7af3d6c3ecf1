"""The literature-strength series models behind `data=sequence`, and the seed recipes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.models import build_classifier
from archlab.models.heads import pool
from archlab.models.series_cnn import FCN, ResNet1D
from archlab.models.spec import ImageSpec, SequenceSpec
from archlab.models.stems import SeriesPatches


def _model_cfg(*overrides: str):
    return validate(compose_config("train", list(overrides))).model


def test_the_sequence_cnn_default_is_the_published_fcn() -> None:
    """Wang et al. 2017: conv 128/256/128 with kernels 8/5/3, batch norm, global average
    pooling; the same weights read any length."""
    net = build_classifier(_model_cfg("data=sequence"), SequenceSpec(150, 1), 2)
    assert isinstance(net.backbone, FCN)
    convs = [m for m in net.backbone.modules() if isinstance(m, nn.Conv1d)]
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [(128, 8), (256, 5), (128, 3)]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in net.backbone.modules()) == 3
    features, _ = net.backbone(torch.randn(2, 150, 1))
    assert features.shape == (2, 150, 128)  # no pooling inside: length kept
    assert net(torch.randn(3, 97, 1)).shape == (3, 2)  # global pooling: any length


@pytest.mark.parametrize("series", ["fcn", "resnet"])
def test_the_published_series_cnns_end_in_pooled_features_to_classes(series: str) -> None:
    """Their head is global average pooling -> one linear layer: no hidden layer, no dropout,
    whatever `fc_dims` and `dropout` say (those shape images, text and series=blocks)."""
    cfg = _model_cfg("data=sequence", f"model.series={series}", "model.fc_dims=[64]")
    net = build_classifier(cfg, SequenceSpec(150, 1), 3)
    assert [type(m) for m in net.head.mlp] == [nn.Linear]
    assert (net.head.mlp[0].in_features, net.head.mlp[0].out_features) == (128, 3)
    blocks = build_classifier(
        _model_cfg("data=sequence", "model.series=blocks"), SequenceSpec(150, 1), 3
    )
    assert [type(m) for m in blocks.head.mlp] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    image = build_classifier(_model_cfg("data=image"), ImageSpec(1, 8, 8), 10)
    assert image.head.mlp[0].out_features == 128  # images keep fc_dims [128]


def test_resnet_blocks_are_residual() -> None:
    cfg = _model_cfg("data=sequence", "model.series=resnet")
    net = build_classifier(cfg, SequenceSpec(64, 3), 4)
    assert isinstance(net.backbone, ResNet1D) and len(net.backbone.blocks) == 3
    block = net.backbone.blocks[1]
    x = torch.randn(2, 64, 40)
    # The block adds its body to its shortcut before the last ReLU.
    block.eval()
    expected = torch.relu(block.body(x) + block.shortcut(x))
    assert torch.allclose(block(x), expected)
    assert net(torch.randn(2, 64, 3)).shape == (2, 4)


@pytest.mark.parametrize("model", ["transformer", "rnn"])
def test_long_series_are_read_as_patches(model: str) -> None:
    """251 steps -> patches of 251 // 32 = 7 steps -> 36 positions, not 251."""
    net = build_classifier(_model_cfg(f"model={model}", "data=sequence"), SequenceSpec(251, 1), 3)
    assert isinstance(net.stem, SeriesPatches) and net.stem.patch == 7
    tokens, _ = net.stem(torch.randn(2, 251, 1))
    assert tokens.shape[1] == 36
    assert net(torch.randn(2, 251, 1)).shape == (2, 3)
    short = build_classifier(_model_cfg(f"model={model}", "data=sequence"), SequenceSpec(24, 1), 2)
    assert not isinstance(short.stem, SeriesPatches)  # short series: one step per position


def test_patches_pad_the_end_with_the_last_step() -> None:
    stem = SeriesPatches(features=1, dim=4, patch=4)
    x = torch.arange(6.0).view(1, 6, 1)
    with torch.no_grad():
        stem.proj.weight.zero_()
        stem.proj.weight[0] = torch.tensor([1.0, 10.0, 100.0, 1000.0])
        stem.proj.bias.zero_()
    tokens, _ = stem(x)
    # Patch 2 is steps 4, 5, then 5 repeated twice.
    assert tokens[0, :, 0].tolist() == [3210.0, 5554.0]


def test_seed_cnn_derives_its_flattened_size_from_the_input() -> None:
    cfg = _model_cfg("experiment=seed_cnn")
    for spec, flat in ((ImageSpec(3, 32, 32), 64 * 8 * 8), (ImageSpec(1, 8, 8), 64 * 2 * 2)):
        net = build_classifier(cfg, spec, 10)
        first = net.head.mlp[0]
        assert (first.in_features, first.out_features) == (flat, 128)
        convs = [m for m in net.backbone.modules() if isinstance(m, nn.Conv2d)]
        assert [(c.in_channels, c.out_channels) for c in convs] == [(spec.channels, 32), (32, 64)]
        assert net(torch.randn(2, spec.channels, spec.height, spec.width)).shape == (2, 10)


def test_seed_lstm_is_two_layers_read_at_the_last_step() -> None:
    cfg = _model_cfg("experiment=seed_lstm")
    net = build_classifier(cfg, SequenceSpec(8, 8), 10)
    assert net.backbone.rnn.num_layers == 2 and not net.backbone.rnn.bidirectional
    x = torch.randn(2, 8, 8)
    out, _ = net.backbone(x)
    assert torch.allclose(net(x), net.head.mlp(out[:, -1]))


def test_last_pooling_takes_the_last_valid_position_of_padded_text() -> None:
    features = torch.arange(12.0).view(2, 3, 2)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert pool(features, mask, "last").tolist() == [[2.0, 3.0], [10.0, 11.0]]
