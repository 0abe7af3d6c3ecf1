"""A language model's run shows what it learnt: at each validation, continuations of the first
validation texts are in TensorBoard's text tab, the same for two runs with the same seed
(`slow`: a second run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

from archlab.config.job import JobContext
from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.run.lm_samples import LMSamples
from archlab.run.trainer import build_callbacks

WORDS = [
    "the", "cat", "sat", "on", "a", "mat", "while", "dogs", "ran", "past", "every", "house",
    "near", "our", "small", "red", "door",
]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/val/test files of short sentences; the val texts start with distinct words."""
    root = tmp_path_factory.mktemp("corpus")
    for split, count, start in (("train", 120, 0), ("val", 12, 3), ("test", 12, 7)):
        lines = [
            " ".join(WORDS[(start + i + j * 3) % len(WORDS)] for j in range(8))
            for i in range(count)
        ]
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def _args(corpus: Path, model: str, *extra: str) -> list[str]:
    return [
        f"model={model}", "data=text", "task=lm", "data.source=corpus", f"data.path={corpus}",
        "data.tokenizer=char", "data.batch_size=32", "trainer.max_epochs=2",
        "model.d_model=32" if model == "transformer" else "model.hidden_size=32",
        "test_after_fit=false", *extra,
    ]  # fmt: skip


def _texts(run_dir: Path) -> tuple[dict[int, str], list[int]]:
    """The logged samples by step, and the steps of the validation curve."""
    events = EventAccumulator(
        str(run_dir / "tensorboard"), size_guidance={"tensors": 0, "scalars": 0}
    ).Reload()
    tags = [t for t in events.Tags()["tensors"] if t.startswith("samples/lm")]
    texts = {}
    for tag in tags:
        for event in events.Tensors(tag):
            texts[event.step] = tensor_util.make_ndarray(event.tensor_proto).item().decode()
    return texts, [e.step for e in events.Scalars("val/loss")]


def _prompts(corpus: Path, count: int, length: int) -> list[str]:
    return [line[:length] for line in (corpus / "val.txt").read_text().splitlines()[:count]]


def test_a_transformer_lm_logs_continuations_of_the_validation_texts_at_each_validation(
    train_cli, corpus: Path
) -> None:
    result, run_dir = train_cli(*_args(corpus, "transformer", "callbacks.lm_samples.prompts=2"))
    assert result.returncode == 0, result.stderr
    texts, val_steps = _texts(run_dir)
    # 120 training texts in batches of 32: 4 steps an epoch, a validation after each.
    assert len(val_steps) == 2 and sorted(texts) == [4, 8]
    for text in texts.values():
        rows = text.splitlines()[2:]  # under the table's header
        assert len(rows) == 2
        for row, prompt in zip(rows, _prompts(corpus, 2, 8), strict=True):
            _, shown_prompt, continuation, _ = row.split("|")
            assert shown_prompt.strip() == prompt.strip()
            assert continuation.strip()


def _train(corpus: Path, run_dir: Path, *overrides: str) -> dict[int, str]:
    """A real `archlab-train` run; its logged samples by step."""
    result = run_cli(
        "archlab.train", *_args(corpus, "rnn", "callbacks.lm_samples.new_tokens=12"),
        *overrides, f"hydra.run.dir={run_dir}", "trainer.enable_progress_bar=false",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return _texts(run_dir)[0]


@pytest.fixture(scope="module")
def rnn_samples(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, str]:
    return _train(corpus, tmp_path_factory.mktemp("rnn") / "run")


def test_an_rnn_lm_logs_continuations_of_the_validation_texts_at_each_validation(
    rnn_samples: dict[int, str], corpus: Path
) -> None:
    assert sorted(rnn_samples) == [4, 8]
    for prompt in _prompts(corpus, 3, 8):
        assert all(f"| {prompt.strip()} |" in text for text in rnn_samples.values())


@pytest.mark.slow
def test_the_same_seed_logs_the_same_text(
    rnn_samples: dict[int, str], corpus: Path, tmp_path: Path
) -> None:
    """This run also logs to CSV: TensorBoard is found among several loggers."""
    again = _train(corpus, tmp_path / "again", "logger=[csv,tensorboard]")
    assert again == rnn_samples


@pytest.mark.parametrize(
    ("overrides", "logged"),
    [
        ([], True),
        (["callbacks.lm_samples.prompts=0"], False),
        (["logger=csv"], False),
        (["logger=none"], False),
        (["task=mlm"], False),
    ],
)
def test_samples_are_logged_for_language_models_with_tensorboard_only(
    tmp_path: Path, overrides: list[str], logged: bool
) -> None:
    cfg = validate(compose_config("train", [*_args(tmp_path, "transformer"), *overrides]))
    callbacks = build_callbacks(cfg, tmp_path, JobContext(run_dir=tmp_path), has_logger=True)
    assert any(isinstance(c, LMSamples) for c in callbacks) == logged
