"""`archlab-explain RUN_DIR INPUT...`: PNGs of what a trained classifier's predictions rest on."""

from __future__ import annotations

import argparse
from pathlib import Path

from archlab.errors import ArchlabError, exit_with

METHODS = ("integrated_gradients", "input_x_gradient")  # as archlab.records.attributions


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="archlab-explain",
        description="Attribute a classifier's predictions to its inputs (Captum): a heatmap over "
        "image pixels, series steps or tokens, written as one PNG per input.",
    )
    parser.add_argument("run", type=Path, help="a run directory or a .ckpt file")
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="SPLIT:INDEX (an example of the run's data, e.g. test:0); for text runs also a "
        "text or a .txt file",
    )
    parser.add_argument("--output", type=Path, help="where the PNGs go (default: RUN/explain)")
    parser.add_argument("--method", choices=METHODS, default=METHODS[0])
    args = parser.parse_args()
    # torch, Lightning and Captum load once the arguments parsed: --help answers at once.
    from archlab.run.explain import explain

    try:
        folder = args.run if args.run.is_dir() else args.run.parent
        written = explain(args.run, args.inputs, args.output or folder / "explain", args.method)
    except ArchlabError as error:
        exit_with("archlab-explain", error)
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
