"""Text continuations of prompts from a run trained with `task=lm`; translations of them from
a run trained with `task=translate`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from archlab.errors import ConfigError
from archlab.inference.loader import TrainedModel
from archlab.inference.sampling import Sampling, context_length, generate
from archlab.inference.translate import Search, translate_texts


@dataclass
class Continuation:
    prompt: str
    sample: int
    text: str
    new_tokens: int
    stopped: str  # "max_new_tokens" | "end_of_text" | "context" | "max_length" (translation)


def prompt_ids(model: TrainedModel, prompt: str) -> torch.Tensor:
    """(1, T) ids of `prompt` with the run's tokenizer; a Transformer keeps its last
    context-1 tokens, so that at least one new token fits."""
    if not prompt:
        raise ConfigError("--prompt is empty: give at least one character to continue.")
    tokenizer = model.tokenizer
    ids = tokenizer.encode([prompt], len(prompt.encode()) + 1)[0]
    ids = ids[ids != tokenizer.pad_id]
    limit = context_length(model.network)
    if limit is not None:
        ids = ids[-(limit - 1) :]
    return ids[None]


def continue_prompts(
    model: TrainedModel,
    prompts: list[str],
    max_new_tokens: int,
    sampling: Sampling,
    num_samples: int = 1,
    seed: int = 0,
    device: str = "cpu",
) -> list[Continuation]:
    """`num_samples` continuations of each prompt; the same seed gives the same texts. A sample
    ends where the model writes end of text (not shown), each one on its own."""
    if model.task != "lm":
        raise ConfigError(
            f"{model.checkpoint} was trained with task={model.task}; archlab-generate needs a "
            "run trained with task=lm (next-token language model) or task=translate."
        )
    network = model.network.to(device)
    tokenizer = model.tokenizer
    eos = tokenizer.eos_id  # None: a run trained before archlab's tokenizers had one
    limit = context_length(network)
    out = []
    for index, prompt in enumerate(prompts):
        ids = prompt_ids(model, prompt).to(device)
        generator = torch.Generator().manual_seed(seed + index)
        tokens = generate(
            network, ids.expand(num_samples, -1), max_new_tokens, sampling, generator, eos
        )
        for sample, row in enumerate(tokens.cpu()):
            new = row[ids.shape[1] :]
            ends = (new == eos).nonzero() if eos is not None else []
            if len(ends):
                new, stopped = new[: int(ends[0])], "end_of_text"
            elif limit is not None and len(row) >= limit and len(new) < max_new_tokens:
                stopped = "context"
            else:
                stopped = "max_new_tokens"
            text = tokenizer.decode(row[: ids.shape[1] + len(new)].tolist())
            out.append(Continuation(prompt, sample, text, len(new), stopped))
    return out


def translate_prompts(
    model: TrainedModel, prompts: list[str], search: Search, device: str = "cpu"
) -> list[Continuation]:
    """The translation of each prompt by a run trained with task=translate (one sample:
    the search is deterministic)."""
    if any(not prompt.strip() for prompt in prompts):
        raise ConfigError("--prompt is empty: give a sentence to translate.")
    done = translate_texts(model, prompts, search, device=device)
    return [
        Continuation(prompt, 0, t.text, t.tokens, t.stopped)
        for prompt, t in zip(prompts, done, strict=True)
    ]
