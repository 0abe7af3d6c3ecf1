"""`archlab-predict`: classify new images, series or texts with a trained run's model, or
translate new sentences with a translation run's."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from archlab.errors import ArchlabError, ConfigError, exit_with

if TYPE_CHECKING:
    from archlab.inference.loader import TrainedModel

PROG = "archlab-predict"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Predict the class of new inputs with a trained model, or translate "
        "sentences with a run trained with task=translate. Everything comes from the run "
        "directory (config, weights, class names, tokenizers, normalisation statistics); the "
        "training data is not needed.",
    )
    parser.add_argument("path", type=Path, help="a run directory or a .ckpt file")
    parser.add_argument(
        "inputs",
        type=Path,
        nargs="+",
        help="image files or folders; series .csv / UCR .tsv files (labels ignored); "
        ".txt files (one text per line), .csv or .jsonl files (see --field)",
    )
    parser.add_argument("--output", type=Path, help="a .csv or .jsonl file (default: a table)")
    parser.add_argument(
        "--field", help="csv/jsonl texts: the field (default: data.text_field or data.source_field)"
    )
    parser.add_argument("--top-k", type=int, default=3, help="classes listed per input")
    parser.add_argument(
        "--beam-size", type=int, default=1, help="translation: 1 greedy, more: beam search"
    )
    parser.add_argument(
        "--length-penalty",
        type=float,
        help="translation, beam search: GNMT alpha (default: the run's task.length_penalty)",
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    parser.add_argument("--precision", choices=("32", "bf16", "16"), default="32")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        if args.top_k < 1 or args.batch_size < 1:
            raise ConfigError("--top-k and --batch-size must be at least 1.")
        if args.output and args.output.suffix.lower() not in (".csv", ".jsonl"):
            raise ConfigError(f"--output {args.output}: name a .csv or .jsonl file.")
        from archlab.inference.inputs import read_inputs  # after the checks: torch takes ~1 s
        from archlab.inference.loader import load_trained
        from archlab.inference.predict import class_probabilities, predictions, write_predictions

        model = load_trained(args.path)
        if model.task == "translate":
            _translate(model, args)
            return
        if model.task != "classify":
            hint = " Use archlab-generate." if model.task == "lm" else ""
            raise ConfigError(
                f"{model.checkpoint} was trained with task={model.task}, not a classifier: it "
                f"has no classes to predict.{hint}"
            )
        inputs = read_inputs(model, args.inputs, args.field)
        for what, count in inputs.notes.items():
            print(f"{PROG}: note: {count} input(s) {what}", file=sys.stderr)
        probabilities = class_probabilities(
            model,
            inputs.tensor,
            args.batch_size,
            args.device,
            args.precision,
            progress=sys.stderr.isatty() and len(inputs.order) > 4 * args.batch_size,
        )
        records = predictions(model, inputs, probabilities, args.top_k)
        write_predictions(records, args.output)
    except ArchlabError as error:
        exit_with(PROG, error)
    _say_refused(records)


def _translate(model: TrainedModel, args: argparse.Namespace) -> None:
    from archlab.inference.predict import write_records
    from archlab.inference.translate import (
        TRANSLATION_COLUMNS,
        Search,
        check_search,
        predict_translations,
        translation_cells,
        translation_table,
    )

    search = Search(args.beam_size, args.length_penalty)
    check_search(search)
    records, notes = predict_translations(
        model,
        args.inputs,
        args.field,
        search,
        args.batch_size,
        args.device,
        args.precision,
        progress=sys.stderr.isatty(),
    )
    for what, count in notes.items():
        print(f"{PROG}: note: {count} input(s) {what}", file=sys.stderr)
    terminal = translation_table(records) if args.output is None else ""
    write_records(records, args.output, terminal, TRANSLATION_COLUMNS, translation_cells)
    _say_refused(records)


def _say_refused(records: list[dict]) -> None:
    refused = sum("error" in r for r in records)
    if refused:
        print(
            f"{PROG}: {refused} of {len(records)} input(s) refused (see each one's error)",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
