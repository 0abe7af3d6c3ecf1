"""Real training runs through `archlab-train`: the models learn, the run directory holds what a
user looks at afterwards (TensorBoard curves and HParams, checkpoints, metrics.json), and a seed
makes a run repeatable.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from omegaconf import OmegaConf
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import plugin_data_pb2

QUIET = ("trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")
DIGITS_EPOCHS = 8


def _train(run_dir: Path, *overrides: str) -> dict:
    """Runs archlab-train to completion; returns its metrics.json."""
    result = run_cli("archlab.train", *overrides, f"hydra.run.dir={run_dir}", *QUIET)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((run_dir / "metrics.json").read_text())


def _metric_values(metrics: dict) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k.startswith(("val/", "test/"))}


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default experiment (CNN on the bundled digits), shortened to a few epochs."""
    run_dir = tmp_path_factory.mktemp("digits") / "run"
    _train(run_dir, f"trainer.max_epochs={DIGITS_EPOCHS}")
    return run_dir


@pytest.fixture(scope="module")
def digits_metrics(digits_run: Path) -> dict:
    return json.loads((digits_run / "metrics.json").read_text())


@pytest.fixture(scope="module")
def events(digits_run: Path) -> ea.EventAccumulator:
    """Every event file of the run, read back by TensorBoard's own reader."""
    files = sorted((digits_run / "tensorboard").glob("events.out.tfevents.*"))
    assert files, "no TensorBoard event files"
    accumulator = ea.EventAccumulator(
        str(digits_run / "tensorboard"), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0}
    )
    return accumulator.Reload()


# ---------------------------------------------------------------- the default model learns
def test_default_cnn_learns_the_digits(digits_metrics: dict) -> None:
    assert digits_metrics["test/acc"] >= 0.95
    assert digits_metrics["val/acc"] >= 0.9
    assert digits_metrics["epochs"] == DIGITS_EPOCHS
    assert digits_metrics["classes"] == [str(d) for d in range(10)]


def test_confusion_matrices_agree_with_the_accuracies(digits_metrics: dict) -> None:
    for split in ("val", "test"):
        matrix = np.array(digits_metrics["confusion_matrix"][split])
        assert matrix.shape == (10, 10)
        assert (matrix >= 0).all()
        assert np.trace(matrix) / matrix.sum() == pytest.approx(
            digits_metrics[f"{split}/acc"], abs=1e-6
        )
    test, val = (np.array(digits_metrics["confusion_matrix"][s]) for s in ("test", "val"))
    assert test.sum() > val.sum()  # test_fraction 0.2 > val_fraction 0.1


# ---------------------------------------------------------------- TensorBoard
def test_tensorboard_has_the_training_curves(events: ea.EventAccumulator, digits_run) -> None:
    scalars = set(events.Tags()["scalars"])
    for tag in ("train/loss", "val/acc", "val/loss", "test/acc"):
        assert tag in scalars, sorted(scalars)
    lr_tags = [t for t in scalars if t.startswith("lr-AdamW")]
    assert lr_tags, sorted(scalars)

    # The learning rate warms up, never exceeds the configured peak, and decays (cosine).
    peak = OmegaConf.load(digits_run / ".hydra" / "config.yaml").task.optimizer.lr
    lrs = [e.value for e in events.Scalars(lr_tags[0])]
    assert 0 < lrs[0] < max(lrs) <= peak * (1 + 1e-6)
    assert lrs[-1] < 0.1 * max(lrs)

    losses = [e.value for e in events.Scalars("train/loss")]
    assert losses[-1] < losses[0] / 2


def test_val_curve_has_one_point_per_epoch(events: ea.EventAccumulator, digits_metrics) -> None:
    """Re-validating the best checkpoint after fit must not add a point to the curve."""
    steps = [e.step for e in events.Scalars("val/acc")]
    assert len(steps) == digits_metrics["epochs"]
    assert steps == sorted(set(steps))
    assert max(steps) < digits_metrics["global_step"]
    assert len({e.step for e in events.Scalars("val/loss")}) == len(steps)


def test_tensorboard_test_accuracy_is_the_recorded_one(events, digits_metrics) -> None:
    (point,) = events.Scalars("test/acc")
    assert point.value == pytest.approx(digits_metrics["test/acc"], abs=1e-6)


def test_hparams_tab_lists_the_config_beside_the_final_metrics(events, digits_metrics) -> None:
    content = events.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= content.keys()

    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["model/name"].string_value == "cnn"
    assert hparams["data/modality"].string_value == "image"
    assert hparams["task/optimizer/name"].string_value == "adamw"
    assert hparams["trainer/max_epochs"].number_value == DIGITS_EPOCHS
    assert hparams["seed"].number_value == 42

    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    metric_tags = {m.name.tag for m in experiment.experiment.metric_infos}
    assert "final/test/acc" in metric_tags
    assert "final/val/acc" in metric_tags
    hparam_names = {h.name for h in experiment.experiment.hparam_infos}
    assert {"model/name", "task/optimizer/lr"} <= hparam_names

    # The values the HParams tab shows are the run's final metrics.
    (final,) = events.Scalars("final/test/acc")
    assert final.value == pytest.approx(digits_metrics["test/acc"], abs=1e-6)


# ---------------------------------------------------------------- checkpoints
def test_best_and_last_checkpoints_load_safely(digits_run: Path, digits_metrics, events) -> None:
    assert digits_metrics["best_checkpoint"] == "checkpoints/best.ckpt"
    best_path = digits_run / digits_metrics["best_checkpoint"]
    last_path = digits_run / "checkpoints" / "last.ckpt"
    best = torch.load(best_path, map_location="cpu", weights_only=True)
    last = torch.load(last_path, map_location="cpu", weights_only=True)
    for checkpoint in (best, last):
        assert checkpoint["state_dict"]
        assert checkpoint["hyper_parameters"]["model"]["name"] == "cnn"
    assert last["global_step"] == digits_metrics["global_step"]

    # best.ckpt is the epoch with the highest val/acc, and the recorded val metrics are its own.
    val_curve = events.Scalars("val/acc")
    best_point = max(val_curve, key=lambda e: e.value)
    assert digits_metrics["val/acc"] == pytest.approx(best_point.value, abs=1e-6)
    assert best["epoch"] == val_curve.index(best_point)


# ---------------------------------------------------------------- reproducibility
@pytest.mark.slow
def test_the_same_seed_repeats_a_run_and_another_seed_does_not(tmp_path: Path) -> None:
    short = ("trainer.max_epochs=2", "trainer.limit_train_batches=5")
    first = _train(tmp_path / "a", *short)
    again = _train(tmp_path / "b", *short)
    other = _train(tmp_path / "c", *short, "seed=7")
    assert _metric_values(first).keys() >= {"val/acc", "val/loss", "test/acc", "test/loss"}
    assert _metric_values(again) == _metric_values(first)
    assert again["confusion_matrix"] == first["confusion_matrix"]
    assert _metric_values(other).keys() == _metric_values(first).keys()
    assert _metric_values(other)["val/loss"] != _metric_values(first)["val/loss"]
    assert _metric_values(other)["test/loss"] != _metric_values(first)["test/loss"]


# ---------------------------------------------------------------- other architectures learn
@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "data", "epochs"),
    [
        pytest.param("rnn", "sequence", 3, id="rnn-sequence"),
        pytest.param("transformer", "text", 3, id="transformer-text"),
    ],
)
def test_other_architectures_beat_chance(tmp_path: Path, model: str, data: str, epochs: int):
    metrics = _train(
        tmp_path / "run", f"model={model}", f"data={data}", f"trainer.max_epochs={epochs}"
    )
    chance = 1 / len(metrics["classes"])
    assert metrics["test/acc"] > 2 * chance
