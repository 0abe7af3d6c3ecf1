"""`archlab-generate`: continue prompts with a language model trained with `task=lm`."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from archlab.errors import ArchlabError, ConfigError, exit_with

PROG = "archlab-generate"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Sample continuations of prompts from a run trained with task=lm "
        "(Transformer: key/value cache; RNN: carried hidden state).",
    )
    parser.add_argument("path", type=Path, help="a run directory or a .ckpt file")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="the text to continue")
    source.add_argument("--prompts", type=Path, help="a file of prompts, one per line")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
    parser.add_argument("--top-k", type=int, help="draw from the k likeliest tokens only")
    parser.add_argument("--top-p", type=float, help="draw from the smallest set holding p")
    parser.add_argument("--num-samples", type=int, default=1, help="continuations per prompt")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same text")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    parser.add_argument("--jsonl", action="store_true", help="one JSON object per sample")
    return parser


def _check(args: argparse.Namespace) -> None:
    if args.max_new_tokens < 1 or args.num_samples < 1:
        raise ConfigError("--max-new-tokens and --num-samples must be at least 1.")
    if args.temperature < 0:
        raise ConfigError(f"--temperature {args.temperature}: must be 0 (greedy) or more.")
    if args.top_k is not None and args.top_k < 1:
        raise ConfigError(f"--top-k {args.top_k}: must be at least 1.")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ConfigError(f"--top-p {args.top_p}: must be in (0, 1].")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        _check(args)
        prompts = [args.prompt]
        if args.prompts:
            from archlab.data.sources.utf8 import read_utf8

            prompts = [p for p in read_utf8(args.prompts, "prompt file").splitlines() if p]
            if not prompts:
                raise ConfigError(f"--prompts {args.prompts}: the file holds no prompt.")
        from archlab.inference.generate import continue_prompts  # after the checks: torch ~1 s
        from archlab.inference.loader import load_trained
        from archlab.inference.predict import pick_device
        from archlab.inference.sampling import Sampling

        model = load_trained(args.path)
        sampling = Sampling(args.temperature, args.top_k, args.top_p)
        results = continue_prompts(
            model,
            prompts,
            args.max_new_tokens,
            sampling,
            args.num_samples,
            args.seed,
            str(pick_device(args.device)),
        )
    except ArchlabError as error:
        exit_with(PROG, error)
    if any(r.stopped == "context" for r in results):
        print(f"{PROG}: note: stopped at the model's context length", file=sys.stderr)
    for r in results:
        if args.jsonl:
            print(json.dumps(asdict(r), ensure_ascii=False))
        else:
            head = f"--- prompt {prompts.index(r.prompt) + 1}, sample {r.sample + 1}"
            print(f"{head} ({r.new_tokens} new tokens, stopped: {r.stopped})\n{r.text}")


if __name__ == "__main__":
    main()
