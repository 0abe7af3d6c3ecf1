"""`archlab-eval`: evaluate a run directory's (or a checkpoint's) model on its test split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from archlab.errors import ArchlabError, exit_with
from archlab.records.run_record import scalar_metrics, write_json_atomic


def evaluate(
    path: Path, split: str = "test", overrides: list[str] | None = None
) -> dict[str, float]:
    """Rebuild data and model from the config inside the checkpoint and score `split`."""
    from archlab.checkpointing.files import find_checkpoint

    ckpt_path = find_checkpoint(path)
    # Lightning, data and tasks (~4 s) load once the path is known: a wrong path fails at once.
    import pytorch_lightning as pl
    from omegaconf import OmegaConf

    from archlab.checkpointing.files import load_checkpoint, load_weights
    from archlab.config.validate import validate
    from archlab.data import build_datamodule
    from archlab.tasks.build import build_task

    checkpoint = load_checkpoint(ckpt_path)
    cfg = OmegaConf.merge(
        OmegaConf.create(checkpoint["hyper_parameters"]),
        OmegaConf.from_dotlist(list(overrides or [])),
    )
    cfg = validate(cfg)
    datamodule = build_datamodule(cfg.data)
    state = checkpoint.get(type(datamodule).__qualname__)
    if state:
        datamodule.load_state_dict(state)
    datamodule.setup("test")
    task = build_task(cfg, datamodule, checkpoint["hyper_parameters"])
    load_weights(task, checkpoint["state_dict"], ckpt_path)
    trainer = pl.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision=cfg.trainer.precision,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    run = trainer.test if split == "test" else trainer.validate
    run(task, datamodule=datamodule, verbose=False)
    metrics = scalar_metrics(trainer.callback_metrics, prefixes=(f"{split}/",))
    return {**metrics, "checkpoint": str(ckpt_path)}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="archlab-eval",
        description="Evaluate a trained model on its data's test (or val) split. Data and "
        "model are rebuilt from the config saved inside the checkpoint; the tokenizer and "
        "normalisation statistics come from the checkpoint too.",
    )
    parser.add_argument("path", type=Path, help="a run directory or a .ckpt file")
    parser.add_argument("overrides", nargs="*", help="config changes, e.g. data.path=/new/place")
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument("--output", type=Path, help="also write the metrics to this JSON file")
    args = parser.parse_args()
    try:
        metrics = evaluate(args.path, args.split, args.overrides)
    except ArchlabError as error:
        exit_with("archlab-eval", error)
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.output:
        write_json_atomic(args.output, metrics)


if __name__ == "__main__":
    main()
