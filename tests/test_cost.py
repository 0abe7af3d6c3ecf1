"""A run's cost record: FLOPs against hand counts, and the fields a real run writes."""

from __future__ import annotations

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from torch import nn

from archlab.checkpointing.files import load_checkpoint
from archlab.records.cost import forward_flops, latency_per_example, trainable_parameters


def test_flops_of_small_models_equal_the_hand_count() -> None:
    # A multiply-add is 2 FLOPs; biases, activations and pooling are not counted.
    mlp = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    assert forward_flops(mlp, torch.zeros(5, 8)) == 2 * 5 * (8 * 16 + 16 * 4)
    # 2 output channels x 3x3 positions, each a 3x3 kernel over 1 channel.
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(18, 3))
    assert forward_flops(conv, torch.zeros(4, 1, 5, 5)) == 2 * 4 * (2 * 9 * 9 + 18 * 3)
    # An LSTM step: 4 gates x 8 units, each over 4 inputs and 8 hidden values.
    lstm = nn.LSTM(4, 8, batch_first=True)
    assert forward_flops(lstm, torch.zeros(2, 3, 4)) == 2 * 2 * 3 * (4 * 8 * (4 + 8))
    # Attention over 16 positions of 8 values, 4 heads: Q.K^T and the weighted sum of V.
    attention = Attention()
    assert forward_flops(attention, torch.zeros(2, 4, 16, 8)) == 2 * 2 * 4 * 2 * (16 * 16 * 8)


class Attention(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.scaled_dot_product_attention(x, x, x)


def test_measuring_leaves_the_model_as_it_was() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    model.train()
    stats = model[1].running_mean.clone()
    inputs = torch.randn(8, 4)
    rng = torch.get_rng_state()
    forward_flops(model, inputs)
    assert latency_per_example(model, inputs) > 0
    assert model.training and all(m.training for m in model)
    assert torch.equal(model[1].running_mean, stats)  # batch-norm statistics untouched
    assert torch.equal(torch.get_rng_state(), rng)  # dropout drew nothing
    model[0].weight.requires_grad_(False)
    assert trainable_parameters(model) == 4 + 4 + 4  # bias + batch-norm weight and bias


def test_a_run_records_its_cost(train_cli) -> None:
    result, run_dir = train_cli(
        "model=cnn",
        "model.channels=[8]",
        "model.fc_dims=[]",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=5",
        # The worst epoch is kept: the cost must still be the whole fit's, not the checkpoint's.
        "callbacks.checkpoint.mode=min",
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((run_dir / "metrics.json").read_text())
    cost = record["cost"]
    best = load_checkpoint(run_dir / record["best_checkpoint"])
    assert best["epoch"] == 0
    weights = best["state_dict"]
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    params = sum(v.numel() for k, v in weights.items() if not k.endswith(buffers))
    assert cost["params"] == params
    # 8 channels x 8x8 positions x 3x3 kernel over 1 channel, then the 8 -> 10 output layer.
    assert cost["flops_per_example"] == 2 * (8 * 64 * 9 + 8 * 10)
    assert cost["optimizer_steps"] == record["global_step"] == 10
    assert cost["train_examples"] == 10 * 64
    assert cost["train_time_s"] > 0
    assert cost["throughput_examples_per_s"] > cost["train_examples"] / cost["train_time_s"]
    assert cost["peak_memory_kind"] == "rss" and cost["peak_memory_mb"] > 100
    # The digits' validation split (180 images) is smaller than eval_batch_size=512.
    assert cost["eval_batch_size"] == 180
    assert cost["latency_batch1_ms"] > cost["latency_eval_batch_ms"] > 0

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    # HParams: the cost figures are metrics of the run's entry, beside final/*.
    content = events.PluginTagToContent("hparams")["_hparams_/experiment"]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    tags = {m.name.tag for m in experiment.metric_infos}
    assert {"cost/params", "cost/train_time_s", "cost/latency_batch1_ms"} <= tags
    assert "cost/peak_memory_kind" not in tags  # text is not a metric
    assert events.Scalars("cost/params")[0].value == params
    assert events.Scalars("cost/flops_per_example")[0].value == cost["flops_per_example"]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)
