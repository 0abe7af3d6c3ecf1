"""What a language model has learnt, readable beside its loss: at each validation of a
`task=lm` fit, continuations of fixed prompts go to TensorBoard's text tab.

The prompts are the first `prompt_tokens` tokens of the first validation documents, and each
prompt's generator is seeded by (seed, prompt), so two runs with the same seed log the same
text and, within a run, the texts change only as the model does. The sampler is the one
`archlab-generate` uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.states import TrainerFn

from archlab.inference.sampling import Sampling, generate
from archlab.records.dashboards import tensorboard_of

TAG = "samples/lm"


def _cell(text: str) -> str:
    """One markdown table cell: whitespace collapsed, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


class LMSamples(Callback):
    """`cfg` is `callbacks.lm_samples`; `seed` the run's seed."""

    def __init__(self, cfg: Mapping[str, Any], seed: int) -> None:
        self.count = int(cfg["prompts"])
        self.prompt_tokens = int(cfg["prompt_tokens"])
        self.new_tokens = int(cfg["new_tokens"])
        self.sampling = Sampling(temperature=float(cfg["temperature"]))
        self.seed = seed

    def _prompts(self, datamodule: Any) -> list[torch.Tensor]:
        """The first tokens of the first validation documents (empty ones left out)."""
        val = datamodule.datasets["val"]
        rows = val.__getitems__(list(range(min(self.count, len(val)))))[0]
        pad = datamodule.tokenizer.pad_id
        prompts = [row[row != pad][: self.prompt_tokens] for row in rows]
        return [p for p in prompts if len(p)]

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Fitting only: not the sanity check, nor the re-validation of the best checkpoint.
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        logger = tensorboard_of(trainer.loggers)
        if logger is None or not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        tokenizer = datamodule.tokenizer
        rows = ["| prompt | continuation |", "| --- | --- |"]
        for index, prompt in enumerate(self._prompts(datamodule)):
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
            ids = generate(
                pl_module.model,
                prompt[None].to(pl_module.device),
                self.new_tokens,
                self.sampling,
                generator,
                stop_id=tokenizer.eos_id,  # an lm tokenizer ends texts with it
            )[0, len(prompt) :].cpu()
            ends = (ids == tokenizer.eos_id).nonzero()
            new = (ids[: int(ends[0])] if len(ends) else ids).tolist()
            rows.append(
                f"| {_cell(tokenizer.decode(prompt.tolist()))} | {_cell(tokenizer.decode(new))} |"
            )
        logger.experiment.add_text(TAG, "\n".join(rows), trainer.global_step)
        logger.experiment.flush()
