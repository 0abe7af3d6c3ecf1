"""The three architectures are correct plain nn.Modules on every modality."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from archlab.config.schema import MODELS
from archlab.models import ImageSpec, SequenceSpec, TextSpec, build_classifier
from archlab.models.transformer import SelfAttention, SinusoidalPositions

SPECS = {
    "image": ImageSpec(channels=1, height=8, width=8),
    "sequence": SequenceSpec(length=20, features=3),
    "text": TextSpec(vocab_size=50, length=16),
}


def _config(name: str, **changes: object) -> dict:
    cfg = MODELS[name]()
    return {**cfg.__dict__, **changes}


def _inputs(spec: object, batch: int = 4) -> torch.Tensor:
    if isinstance(spec, ImageSpec):
        return torch.randn(batch, spec.channels, spec.height, spec.width)
    if isinstance(spec, SequenceSpec):
        return torch.randn(batch, spec.length, spec.features)
    ids = torch.randint(2, spec.vocab_size, (batch, spec.length))
    ids[0, spec.length // 2 :] = spec.pad_id
    return ids


@pytest.mark.parametrize("modality", SPECS)
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("pooling", ["mean", "max", "flatten"])
def test_every_architecture_maps_every_modality_to_class_logits(
    name: str, modality: str, pooling: str
) -> None:
    model = build_classifier(_config(name, pooling=pooling), SPECS[modality], num_classes=7)
    logits = model(_inputs(SPECS[modality]))
    assert logits.shape == (4, 7)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", MODELS)
def test_padding_never_changes_a_text_prediction(name: str) -> None:
    changes = {"bidirectional": True} if name == "rnn" else {}
    short = build_classifier(_config(name, **changes), TextSpec(50, 12), 3).eval()
    long = build_classifier(_config(name, **changes), TextSpec(50, 20), 3).eval()
    long.load_state_dict(short.state_dict())
    ids = torch.randint(2, 50, (3, 12))
    ids[1, 5:] = 0
    padded = torch.cat([ids, torch.zeros(3, 8, dtype=torch.long)], dim=1)
    torch.testing.assert_close(short(ids), long(padded), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("modality", SPECS)
def test_the_default_rnn_max_pools_text_and_averages_patches_and_series(modality: str) -> None:
    """`model.pooling` null: max over tokens, mean over image patches and series steps; a
    pooling the user sets builds that pooling."""
    spec, x = SPECS[modality], _inputs(SPECS[modality])
    default = build_classifier(_config("rnn"), spec, num_classes=3).eval()
    outputs = {}
    for how in ("mean", "max"):
        chosen = build_classifier(_config("rnn", pooling=how), spec, num_classes=3).eval()
        chosen.load_state_dict(default.state_dict())
        outputs[how] = chosen(x)
    assert not torch.allclose(outputs["mean"], outputs["max"])
    torch.testing.assert_close(default(x), outputs["max" if modality == "text" else "mean"])


def test_attention_matches_a_reference_computation() -> None:
    torch.manual_seed(0)
    attn = SelfAttention(d_model=8, num_heads=2, dropout=0.0).eval()
    x = torch.randn(2, 5, 8)
    q, k, v = attn.qkv(x).split(8, dim=-1)

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.view(2, 5, 2, 4).transpose(1, 2)

    weights = (heads(q) @ heads(k).transpose(-1, -2) / 2.0).softmax(-1)
    expected = attn.out((weights @ heads(v)).transpose(1, 2).reshape(2, 5, 8))
    torch.testing.assert_close(attn(x, None, causal=False), expected)


def test_causal_attention_ignores_the_future() -> None:
    attn = SelfAttention(d_model=8, num_heads=2, dropout=0.0).eval()
    x = torch.randn(1, 6, 8)
    changed = x.clone()
    changed[:, 4:] += 1.0
    torch.testing.assert_close(attn(x, None, True)[:, :4], attn(changed, None, True)[:, :4])


def test_sinusoidal_positions_follow_the_formula() -> None:
    table = SinusoidalPositions(d_model=6, max_len=10).table
    pos, i = 7, 1
    assert table[pos, 2 * i].item() == pytest.approx(
        torch.sin(torch.tensor(pos / 10000 ** (2 * i / 6))).item(), abs=1e-6
    )
    assert table[pos, 2 * i + 1].item() == pytest.approx(
        torch.cos(torch.tensor(pos / 10000 ** (2 * i / 6))).item(), abs=1e-6
    )


def test_configuration_reaches_the_layers() -> None:
    cnn = build_classifier(_config("cnn", channels=[4, 8, 16], batch_norm=False), SPECS["image"], 2)
    convs = [m for m in cnn.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8, 16]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in cnn.modules())
    rnn = build_classifier(
        _config("rnn", cell="gru", num_layers=2, bidirectional=True, hidden_size=12),
        SPECS["sequence"],
        2,
    )
    gru = rnn.backbone.rnn
    assert isinstance(gru, torch.nn.GRU) and gru.num_layers == 2 and gru.bidirectional
    learned = build_classifier(_config("transformer", positional="learned"), SPECS["text"], 2)
    assert any("positions.table.weight" in n for n, _ in learned.named_parameters())
    sinusoidal = build_classifier(_config("transformer"), SPECS["text"], 2)
    assert not any("positions" in n for n, _ in sinusoidal.named_parameters())


def test_a_model_overfits_one_batch() -> None:
    torch.manual_seed(0)
    spec = SPECS["sequence"]
    model = build_classifier(_config("transformer", dropout=0.0), spec, 4)
    x, y = _inputs(spec, 16), torch.randint(0, 4, (16,))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_models_import_neither_lightning_nor_hydra() -> None:
    package = Path(__file__).resolve().parents[1] / "src" / "archlab" / "models"
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                )
                for name in names:
                    assert not name.startswith(
                        ("pytorch_lightning", "lightning", "hydra", "omegaconf")
                    ), path
