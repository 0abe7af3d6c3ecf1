"""`archlab-export`: write a trained model as ONNX or a torch.export program, with a JSON
sidecar, and check it against the eager model on validation examples."""

from __future__ import annotations

import argparse
from pathlib import Path

from archlab.errors import ArchlabError, exit_with

PROG = "archlab-export"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Export a trained model for runtimes without archlab. ONNX goes through "
        "torch.onnx.export(dynamo=True) with a dynamic batch axis (and length for series and "
        "text); torch-export writes a torch.export program (.pt2). A JSON sidecar holds what "
        "inputs need (classes, shape, layout, normalisation, tokenizer file).",
    )
    parser.add_argument("path", type=Path, help="a run directory or a .ckpt file")
    parser.add_argument("--format", choices=("onnx", "torch-export"), default="onnx")
    parser.add_argument(
        "--output", type=Path, help="the model file (default: <run>/export/model.onnx|.pt2)"
    )
    args = parser.parse_args(argv)
    try:
        from archlab.inference.export import FORMATS, export_model, require_export_extra

        if args.format == "onnx":
            require_export_extra()  # before loading anything: the fix is one pip command
        from archlab.inference.loader import load_trained

        model = load_trained(args.path)
        suffix = FORMATS[args.format]
        default = (
            args.path / "export" / f"model{suffix}"
            if args.path.is_dir()
            else model.checkpoint.with_suffix(suffix)
        )
        result = export_model(model, args.format, args.output or default)
    except ArchlabError as error:
        exit_with(PROG, error)
    p = result.parity
    print(f"wrote {result.model_file}\nwrote {result.sidecar}")
    print(
        f"parity ({p['inputs']}): max abs difference {p['max_abs_diff']:.2e} "
        f"(< {p['tolerance']}), same predictions: {p['same_predictions']}"
    )


if __name__ == "__main__":
    main()
