"""Encoder-decoders and decoding, without training: padding never changes a translation, beam
search finds what greedy misses, and the metrics agree with sacrebleu."""

from __future__ import annotations

import math
from datetime import date

import pytest
import sacrebleu
import torch
from torch import nn

from archlab.data.sources.dates import MONTHS, generate_dates
from archlab.models.attention_maps import cross_attention_maps
from archlab.models.decoding import beam_search, greedy
from archlab.models.seq2seq import build_translator
from archlab.models.spec import TextSpec
from archlab.tasks.translate import TranslationMetrics

SOURCE = TextSpec(vocab_size=20, length=12, pad_id=0)
TARGET_VOCAB, TARGET_LENGTH = 15, 8
BOS, EOS = 13, 14
MODELS = {
    "transformer": {
        "name": "transformer",
        "d_model": 16,
        "num_heads": 2,
        "num_layers": 2,
        "ff_dim": 32,
        "dropout": 0.0,
        "positional": "sinusoidal",
        "patch_size": 2,
    },
    "rnn": {
        "name": "rnn",
        "cell": "lstm",
        "hidden_size": 16,
        "num_layers": 1,
        "bidirectional": True,
        "dropout": 0.0,
        "embed_dim": 8,
        "patch_size": 2,
        "attention": True,
    },
    "cnn": {
        "name": "cnn",
        "channels": [8, 16],
        "kernel_size": 3,
        "batch_norm": True,
        "dropout": 0.0,
        "embed_dim": 8,
    },
}
MODELS["rnn-no-attention"] = {**MODELS["rnn"], "attention": False}


def _translator(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = build_translator(MODELS[name], SOURCE, TARGET_VOCAB, TARGET_LENGTH)
    return model.eval()


def _sources() -> torch.Tensor:
    """Three sources of lengths 7, 4 and 9, right-padded to 9."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, SOURCE.vocab_size, (3, 9), generator=g)
    for row, length in enumerate((7, 4, 9)):
        ids[row, length:] = 0
    return ids


@pytest.mark.parametrize("name", list(MODELS))
def test_padding_never_changes_the_output(name: str) -> None:
    model = _translator(name)
    source = _sources()
    padded = torch.cat([source, torch.zeros(3, 3, dtype=torch.long)], 1)
    target = torch.randint(2, 13, (3, 6), generator=torch.Generator().manual_seed(2))
    target[:, 0] = BOS
    with torch.no_grad():
        logits = model(source, target)
        assert torch.allclose(model(padded, target), logits, atol=1e-5)
        # Target padding after a position changes nothing at or before it (causal mask).
        short = target.clone()
        short[:, 4:] = 0
        assert torch.allclose(model(source, short)[:, :4], logits[:, :4], atol=1e-5)
    out, score = greedy(model, source, BOS, EOS, TARGET_LENGTH - 1)
    out_padded, score_padded = greedy(model, padded, BOS, EOS, TARGET_LENGTH - 1)
    assert torch.equal(out, out_padded)
    assert torch.allclose(score, score_padded, atol=1e-4)
    # A source alone gives what it gives inside a batch of longer ones.
    alone, _ = greedy(model, source[1:2, :4], BOS, EOS, TARGET_LENGTH - 1)
    assert torch.equal(alone[0], out[1, : alone.shape[1]])


@pytest.mark.parametrize("name", ["transformer", "rnn", "cnn"])
def test_cross_attention_never_falls_on_padding(name: str) -> None:
    model = _translator(name)
    source = _sources()
    target = torch.full((3, 5), 3)
    target[:, 0] = BOS
    maps = cross_attention_maps(model, source, target)
    assert maps
    for weights in maps:  # (B, heads, T, S')
        assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5)
        span = math.ceil(source.shape[1] / weights.shape[-1])
        for row, length in enumerate((7, 4, 9)):
            assert float(weights[row, ..., math.ceil(length / span) :].sum()) == 0.0


class _Trap(nn.Module):
    """A decoder where greedy fails: after <bos>, token 2 (p=0.6) beats token 3 (p=0.4), but
    every continuation of 2 is uncertain (best p=0.3), while 3 is followed by <eos> (p=0.95).
    Greedy's 2, <eos> scores 0.6 x 0.3 = 0.18; beam's 3, <eos> scores 0.4 x 0.95 = 0.38."""

    vocab = 5
    eos = 4

    def start(self, source: torch.Tensor, bos: int) -> dict[str, torch.Tensor]:
        return {"last": torch.full((len(source),), bos)}

    def _probs(self, last: int) -> list[float]:
        if last == 0:  # after <bos> (id 0 here)
            return [0.0, 0.0, 0.6, 0.4, 0.0]
        if last == 2:
            return [0.0, 0.25, 0.25, 0.2, 0.3]
        if last == 3:
            return [0.0, 0.02, 0.02, 0.01, 0.95]
        return [0.0, 0.1, 0.1, 0.1, 0.7]

    def step(self, state: dict[str, torch.Tensor]):
        probs = torch.tensor([self._probs(int(t)) for t in state["last"]])
        return probs.clamp(min=1e-9).log(), state

    def advance(self, state: dict[str, torch.Tensor], token: torch.Tensor):
        return {"last": token}


def test_beam_search_finds_what_greedy_misses() -> None:
    trap, source = _Trap(), torch.zeros(2, 3, dtype=torch.long)
    greedy_out, greedy_score = greedy(trap, source, 0, trap.eos, 5)
    beam_out, beam_score = beam_search(trap, source, 0, trap.eos, 5, beam_size=2, alpha=0.0)
    assert greedy_out[0].tolist() == [2, 4]
    assert beam_out[0].tolist()[:2] == [3, 4]
    assert torch.allclose(beam_score, torch.tensor([math.log(0.38)] * 2), atol=1e-5)
    assert bool((beam_score > greedy_score).all())
    one, one_score = beam_search(trap, source, 0, trap.eos, 5, beam_size=1, alpha=0.0)
    assert one[0].tolist() == [2, 4] and torch.allclose(one_score, greedy_score)


def test_metrics_agree_with_sacrebleu_on_fixed_strings() -> None:
    outputs = ["the cat sat on the mat", "2021-04-03", "a quick brown fox jumps", "hello world"]
    # Every reference has >= 6 characters: sacrebleu drops a sentence's hypothesis n-grams of
    # an order its reference is too short for, torchmetrics counts them.
    references = ["the cat sat on a mat", "2021-04-03", "the quick brown fox jumped", "hello there"]
    metrics = TranslationMetrics()
    metrics.update(outputs[:2], references[:2])  # in two batches, as evaluation feeds it
    metrics.update(outputs[2:], references[2:])
    values = metrics.compute()
    bleu = sacrebleu.corpus_bleu(outputs, [references]).score
    # torchmetrics' chrF averages the F-scores of the n-gram orders, as the original chrF++.py
    # does: sacrebleu's `eps_smoothing=True` (its default averages precision and recall first).
    chrf = sacrebleu.metrics.CHRF(eps_smoothing=True).corpus_score(outputs, [references]).score
    assert float(values["bleu"]) == pytest.approx(bleu, abs=0.01)
    assert float(values["chrf"]) == pytest.approx(chrf, abs=0.01)
    assert float(values["exact_match"]) == 0.25


def test_the_dates_task_is_seeded_distinct_and_iso() -> None:
    sources, targets = generate_dates(3000, seed=5)
    assert (sources, targets) == generate_dates(3000, seed=5)
    assert generate_dates(50, seed=6)[0] != sources[:50]
    assert len(set(sources)) == len(sources)
    for target in targets:
        assert date.fromisoformat(target).isoformat() == target
    text = " ".join(sources).lower()
    for names in MONTHS.values():  # every language's month names appear
        assert any(name.lower() in text for name in names.split())
