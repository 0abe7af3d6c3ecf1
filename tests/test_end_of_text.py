"""Generation stops at end of text: a language model's tokenizer has an end-of-text id (the last
one, other ids unchanged), its training texts end with it, and `archlab-generate` ends each
sample where the model writes it (not shown), samples of one batch each on their own. A run
whose tokenizer predates the id still loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from archlab.cli import generate as generate_cli
from archlab.config.job import JobContext
from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.data import build_datamodule
from archlab.data.tokenizers import fit_tokenizer, tokenizer_from_json
from archlab.inference.generate import continue_prompts
from archlab.inference.loader import load_trained
from archlab.inference.sampling import Sampling, generate
from archlab.run.fit import fit
from archlab.run.stages import stage_config
from archlab.tasks import build

DOCUMENTS = ["the cat sat.", "a dog ran far.", "birds can fly high."]
MODELS = {
    "transformer": ["model=transformer", "model.d_model=32", "model.ff_dim=64"],
    "rnn": ["model=rnn", "model.hidden_size=48"],
}
QUIET = ["logger=none", "test_after_fit=false", "trainer.enable_progress_bar=false",
         "trainer.enable_model_summary=false"]  # fmt: skip


def _lm(corpus: Path, *overrides: str) -> list[str]:
    return ["data=text", "data.source=corpus", f"data.path={corpus}", "data.tokenizer=char",
            "task=lm", "data.batch_size=16", *overrides]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "docs.txt"
    path.write_text("\n".join(DOCUMENTS * 30) + "\n")
    return path


@pytest.fixture(scope="module")
def lms(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A Transformer and an RNN language model trained by `archlab-train` on three short
    documents until they know them by heart (a few seconds each)."""
    from conftest import run_cli

    root = tmp_path_factory.mktemp("lms")
    steps = ["trainer.max_epochs=20", "trainer.check_val_every_n_epoch=20",
             "trainer.num_sanity_val_steps=0", "task.optimizer.lr=0.01",
             "task.scheduler.warmup_steps=10"]  # fmt: skip
    for name, model in MODELS.items():
        result = run_cli(
            "archlab.train", *_lm(corpus, *model, *steps, *QUIET), f"hydra.run.dir={root / name}"
        )
        assert result.returncode == 0, result.stderr[-3000:]
    return {name: root / name for name in MODELS}


def _generate(capsys, *argv: str) -> list[dict]:
    generate_cli.main([*argv, "--jsonl"])
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_the_end_of_text_id_comes_last_and_leaves_the_other_ids_alone() -> None:
    texts = ["abc cab", "bad cab", "a"]
    for kind, size in (("char", 10), ("bpe", 300)):
        plain = fit_tokenizer(kind, texts, size)
        ended = fit_tokenizer(kind, texts, size + 1, end_of_text=True)
        assert plain.eos_id is None and ended.eos_id == ended.vocab_size - 1 == plain.vocab_size
        assert torch.equal(plain.encode(texts, 12), ended.encode(texts, 12))
        restored = tokenizer_from_json(ended.to_json())
        assert restored.eos_id == ended.eos_id
        # A text that fits ends with the id; one cut at max_len has not ended there.
        ids = restored.encode_documents(["a", "abc cab bad abc cab"], 3)
        assert ids[0].tolist()[:2] == [*plain.encode(["a"], 1)[0].tolist(), ended.eos_id]
        assert ended.eos_id not in ids[1].tolist()
        assert restored.decode(ids[0].tolist()) == plain.decode(plain.encode(["a"], 3)[0].tolist())
        # Tokenizers without the id are written as before, so older archlab reads them.
        assert json.loads(plain.to_json())["format_version"] == 1
        assert json.loads(ended.to_json())["format_version"] == 2


@pytest.mark.parametrize("name", list(MODELS))
def test_a_trained_model_stops_at_the_end_of_a_document(lms, name, capsys) -> None:
    prompts = {"a dog": "a dog ran far.", "birds": "birds can fly high.", "the c": "the cat sat."}
    for prompt, document in prompts.items():
        argv = ["--prompt", prompt, "--temperature", "0", "--max-new-tokens", "40"]
        record = _generate(capsys, str(lms[name]), *argv)[0]
        assert record["text"] == document, record
        assert record["stopped"] == "end_of_text"
        assert record["new_tokens"] == len(document) - len(record["prompt"]) < 40


@pytest.mark.parametrize("name", list(MODELS))
def test_samples_stop_one_by_one_the_cache_changes_nothing_and_a_seed_repeats(lms, name, capsys):
    model = load_trained(lms[name])
    eos = model.tokenizer.eos_id
    prompt = model.tokenizer.encode(["a"], 1)
    hot = Sampling(temperature=3.0)  # flat enough that samples end at different lengths
    outs = [
        generate(
            model.network,
            prompt.expand(16, -1),
            30,
            hot,
            torch.Generator().manual_seed(5),
            stop_id=eos,
            use_cache=cache,
        )
        for cache in (True, False)
    ]
    assert torch.equal(outs[0], outs[1])
    args = [str(lms[name]), "--prompt", "a", "--temperature", "3", "--num-samples", "16",
            "--max-new-tokens", "30", "--seed", "5"]  # fmt: skip
    first, again = _generate(capsys, *args), _generate(capsys, *args)
    assert first == again
    ended = [r for r in first if r["stopped"] == "end_of_text"]
    assert len({r["new_tokens"] for r in ended}) > 1  # rows of one batch ended apart
    for r in first:  # the id is never printed, and a sample ends at its first one
        assert "<eos>" not in r["text"] and len(r["text"]) == 1 + r["new_tokens"]


@pytest.mark.parametrize("name", list(MODELS))
def test_a_forced_end_of_text_ends_every_sample_at_once(lms, name) -> None:
    model = load_trained(lms[name])
    with torch.no_grad():
        model.network.head.proj.bias[model.tokenizer.eos_id] = 1e4
    out = continue_prompts(model, ["birds"], 20, Sampling(0.8), num_samples=3, seed=1)
    assert [(r.text, r.new_tokens, r.stopped) for r in out] == [("birds", 0, "end_of_text")] * 3


def test_a_run_whose_tokenizer_has_no_end_of_text_still_generates(
    corpus, tmp_path, monkeypatch, capsys
) -> None:
    """As archlab trained language models before the id existed: its checkpoint loads, and
    samples run to --max-new-tokens, said once."""
    monkeypatch.setattr(
        build, "build_datamodule", lambda cfg, seed=None, **_: build_datamodule(cfg, seed)
    )
    overrides = [
        *_lm(corpus, *MODELS["rnn"]),
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        *QUIET,
    ]
    cfg = stage_config(validate(compose_config("train", overrides)), None)
    fit(cfg, tmp_path / "old", JobContext(tmp_path / "old"))
    checkpoint = torch.load(tmp_path / "old" / "checkpoints" / "best.ckpt", weights_only=True)
    assert json.loads(checkpoint["TextDataModule"]["tokenizer"])["format_version"] == 1
    generate_cli.main([str(tmp_path / "old"), "--prompt", "a", "--max-new-tokens", "7"])
    captured = capsys.readouterr()
    assert "(7 new tokens, stopped: max_new_tokens)" in captured.out
    assert "no end-of-text token" in captured.err
