"""`archlab-generate`: continue prompts with a language model trained with `task=lm`, or
translate them with a run trained with `task=translate`."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from archlab.errors import ArchlabError, ConfigError, exit_with

PROG = "archlab-generate"
SAMPLING = ("max_new_tokens", "temperature", "top_k", "top_p", "num_samples")
LM_DEFAULTS = {"max_new_tokens": 64, "temperature": 1.0, "num_samples": 1}
TRANSLATE_NOT_SAMPLED = (
    "a task=translate run decodes with greedy or beam search, not by sampling: drop them "
    "(use --beam-size and --length-penalty)"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Sample continuations of prompts from a run trained with task=lm "
        "(Transformer: key/value cache; RNN: carried hidden state; a sample ends at end of "
        "text), or translate them with a run trained with task=translate.",
    )
    parser.add_argument("path", type=Path, help="a run directory or a .ckpt file")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="the text to continue (or to translate)")
    source.add_argument("--prompts", type=Path, help="a file of prompts, one per line")
    parser.add_argument("--max-new-tokens", type=int, help="lm: at most this many (default 64)")
    parser.add_argument("--temperature", type=float, help="lm: 0 greedy (default 1)")
    parser.add_argument("--top-k", type=int, help="lm: draw from the k likeliest tokens only")
    parser.add_argument("--top-p", type=float, help="lm: draw from the smallest set holding p")
    parser.add_argument("--num-samples", type=int, help="lm: continuations per prompt (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same text")
    parser.add_argument(
        "--beam-size", type=int, help="translate: 1 greedy (default), more: beam search"
    )
    parser.add_argument(
        "--length-penalty",
        type=float,
        help="translate, beam search: GNMT alpha (default: the run's task.length_penalty)",
    )
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    parser.add_argument("--jsonl", action="store_true", help="one JSON object per sample")
    return parser


def _check(args: argparse.Namespace) -> None:
    """Values out of range, before anything loads."""
    for name in ("max_new_tokens", "num_samples", "top_k", "beam_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} {value}: must be at least 1.")
    if args.temperature is not None and args.temperature < 0:
        raise ConfigError(f"--temperature {args.temperature}: must be 0 (greedy) or more.")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ConfigError(f"--top-p {args.top_p}: must be in (0, 1].")
    if args.length_penalty is not None and args.length_penalty < 0:
        raise ConfigError(f"--length-penalty {args.length_penalty}: must be 0 or more.")


def _refuse(args: argparse.Namespace, names: tuple[str, ...], why: str) -> None:
    given = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is not None]
    if given:
        raise ConfigError(f"{' '.join(given)}: {why}")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    notes = []
    try:
        _check(args)
        prompts = [args.prompt]
        if args.prompts:
            from archlab.data.sources.utf8 import read_utf8

            prompts = [p for p in read_utf8(args.prompts, "prompt file").splitlines() if p]
            if not prompts:
                raise ConfigError(f"--prompts {args.prompts}: the file holds no prompt.")
        # After reading the prompts: torch takes ~1 s to import.
        from archlab.inference.generate import continue_prompts, translate_prompts
        from archlab.inference.loader import load_trained
        from archlab.inference.predict import pick_device
        from archlab.inference.sampling import Sampling
        from archlab.inference.translate import Search

        model = load_trained(args.path)
        device = str(pick_device(args.device))
        if model.task == "translate":
            _refuse(args, SAMPLING, TRANSLATE_NOT_SAMPLED)
            search = Search(args.beam_size or 1, args.length_penalty)
            results = translate_prompts(model, prompts, search, device)
        else:
            _refuse(args, ("beam_size", "length_penalty"), "beam search is for task=translate runs")
            sampled = {n: getattr(args, n) for n in SAMPLING}
            sampled |= {n: v for n, v in LM_DEFAULTS.items() if sampled[n] is None}
            results = continue_prompts(
                model,
                prompts,
                sampled["max_new_tokens"],
                Sampling(sampled["temperature"], sampled["top_k"], sampled["top_p"]),
                sampled["num_samples"],
                args.seed,
                device,
            )
            if model.tokenizer.eos_id is None:
                notes.append(
                    "this run's tokenizer has no end-of-text token (trained before archlab "
                    "added one): samples run to --max-new-tokens"
                )
    except ArchlabError as error:
        exit_with(PROG, error)
    if any(r.stopped == "context" for r in results):
        notes.append("stopped at the model's context length")
    for note in notes:
        print(f"{PROG}: note: {note}", file=sys.stderr)
    for r in results:
        if args.jsonl:
            print(json.dumps(asdict(r), ensure_ascii=False))
        else:
            head = f"--- prompt {prompts.index(r.prompt) + 1}, sample {r.sample + 1}"
            print(f"{head} ({r.new_tokens} new tokens, stopped: {r.stopped})\n{r.text}")


if __name__ == "__main__":
    main()
