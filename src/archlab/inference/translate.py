"""Translations of new sentences by a run trained with `task=translate`, decoded by the
translate task's own search (greedy, or beam search with its length penalty), in batches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from archlab.errors import ConfigError
from archlab.inference.inputs import count_truncated, text_rows
from archlab.inference.loader import TrainedModel
from archlab.inference.predict import aligned, in_batches, pick_device, precision_context
from archlab.models.decoding import translate


@dataclass(frozen=True)
class Search:
    """How translations are decoded: greedy for beam size 1; `length_penalty` None: the
    run's `task.length_penalty`."""

    beam_size: int = 1
    length_penalty: float | None = None


@dataclass
class Translation:
    text: str
    tokens: int
    stopped: str  # "end_of_text" | "max_length" (the longest target the model was trained on)


def check_search(search: Search) -> None:
    if search.beam_size < 1:
        raise ConfigError(f"--beam-size {search.beam_size}: must be at least 1 (1: greedy).")
    if search.length_penalty is not None and search.length_penalty < 0:
        raise ConfigError(f"--length-penalty {search.length_penalty}: must be 0 or more.")


@torch.inference_mode()
def translate_texts(
    model: TrainedModel,
    sources: list[str],
    search: Search = Search(),
    batch_size: int = 256,
    device: str = "cpu",
    precision: str = "32",
    progress: bool = False,
) -> list[Translation]:
    """One translation per source, in order; the same sources give the same translations."""
    codec = model.codec
    alpha = search.length_penalty
    if alpha is None:
        alpha = float(model.cfg.task.length_penalty)
    target = pick_device(device)
    network = model.network.to(target)
    out = []
    for batch in in_batches(codec.encode_sources(sources), batch_size, progress):
        with precision_context(target, precision):
            ids = translate(
                network,
                batch.to(target),
                codec.bos_id,
                codec.eos_id,
                codec.max_decode_length,
                search.beam_size,
                alpha,
            )
        for row in ids.cpu().tolist():
            ended = codec.eos_id in row
            length = row.index(codec.eos_id) if ended else len(row)
            stopped = "end_of_text" if ended else "max_length"
            out.append(Translation(codec.decode_target(row), length, stopped))
    return out


def predict_translations(
    model: TrainedModel,
    paths: list[Path],
    field_name: str | None,
    search: Search,
    batch_size: int = 256,
    device: str = "cpu",
    precision: str = "32",
    progress: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One record per source sentence in `paths` (in order): its translation, or why it was
    refused; and how many sources got each fix-up. `progress`: a bar for large inputs."""
    rows = text_rows(paths, field_name or str(model.cfg.data.source_field))
    sources = [text for _, text in rows if text.strip()]
    notes = {}
    if sources:
        length = model.codec.source_length
        cut = count_truncated(model.codec.source_tokenizer, sources, length)
        if cut:
            notes[f"truncated to the model's {length} source tokens"] = cut
    progress = progress and len(sources) > 4 * batch_size
    done = iter(translate_texts(model, sources, search, batch_size, device, precision, progress))
    records: list[dict[str, Any]] = []
    for ident, text in rows:
        if text.strip():
            records.append({"id": ident, "source": text, "translation": next(done).text})
        else:
            records.append({"id": ident, "error": "empty text"})
    return records, notes


def translation_table(records: list[dict[str, Any]]) -> str:
    rows = [("id", "source", "translation")]
    for r in records:
        if "error" in r:
            rows.append((r["id"], "-", f"refused: {r['error']}"))
        else:
            rows.append((r["id"], r["source"], r["translation"]))
    return aligned(rows)


TRANSLATION_COLUMNS = ["id", "source", "translation", "error"]


def translation_cells(record: dict[str, Any]) -> list[Any]:
    return [record["id"], *(record.get(k, "") for k in TRANSLATION_COLUMNS[1:])]
