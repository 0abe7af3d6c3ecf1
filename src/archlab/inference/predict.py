"""Class predictions for prepared inputs, batched, and the tables `archlab-predict` writes."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from archlab.atomic import write_atomic
from archlab.errors import ConfigError
from archlab.inference.inputs import Inputs
from archlab.inference.loader import TrainedModel

PRECISIONS = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}


def pick_device(name: str) -> torch.device:
    """`auto`: the GPU if there is one, else the CPU; a named device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA GPU is visible here; use --device cpu.")
    return torch.device(name)


def precision_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def in_batches(x: torch.Tensor, size: int, progress: bool) -> Iterator[torch.Tensor]:
    starts = range(0, len(x), size)
    if progress:
        from tqdm import tqdm  # Lightning's dependency; loaded only when a bar is shown

        starts = tqdm(starts, desc="predict", unit="batch", file=sys.stderr)
    for start in starts:
        yield x[start : start + size]


@torch.inference_mode()
def class_probabilities(
    model: TrainedModel,
    x: torch.Tensor,
    batch_size: int = 256,
    device: str = "cpu",
    precision: str = "32",
    progress: bool = False,
) -> torch.Tensor:
    """(N, classes) softmax probabilities of `x` (prepared inputs), in float32 on the CPU."""
    target = pick_device(device)
    network = model.network.to(target)
    out = []
    for batch in in_batches(x, batch_size, progress):
        with precision_context(target, precision):
            logits = network(batch.to(target))
        out.append(logits.float().softmax(-1).cpu())
    return torch.cat(out) if out else torch.empty(0, len(model.classes))


def predictions(
    model: TrainedModel, inputs: Inputs, probabilities: torch.Tensor, top_k: int
) -> list[dict[str, Any]]:
    """One record per input in the order given: its class, probability and top-k, or the
    reason it was refused."""
    k = min(top_k, probabilities.shape[1]) if len(probabilities) else 0
    top = probabilities.topk(k, dim=1) if k else None
    records, row = [], 0
    for ident, reason in inputs.order:
        if reason is not None:
            records.append({"id": ident, "error": reason})
            continue
        values, indices = top.values[row].tolist(), top.indices[row].tolist()
        row += 1
        records.append(
            {
                "id": ident,
                "class": model.classes[indices[0]],
                "probability": round(values[0], 6),
                "top_k": [
                    {"class": model.classes[i], "probability": round(p, 6)}
                    for i, p in zip(indices, values, strict=True)
                ],
            }
        )
    return records


def _top_k_text(record: dict[str, Any]) -> str:
    return " ".join(f"{t['class']}:{t['probability']:.4f}" for t in record.get("top_k", []))


def aligned(rows: list[tuple[str, ...]]) -> str:
    """Rows as aligned columns for a terminal (the last column left ragged)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + f"  {row[-1]}"
        for row in rows
    ]
    return "".join(line + "\n" for line in lines)


def table(records: list[dict[str, Any]]) -> str:
    rows = [("id", "class", "probability", "top-k")]
    for r in records:
        if "error" in r:
            rows.append((r["id"], "-", "-", f"refused: {r['error']}"))
        else:
            rows.append((r["id"], r["class"], f"{r['probability']:.4f}", _top_k_text(r)))
    return aligned(rows)


def write_records(
    records: list[dict[str, Any]],
    output: Path | None,
    terminal: str,
    columns: list[str],
    cells: Callable[[dict[str, Any]], list[Any]],
) -> None:
    """CSV (`columns`, a row of `cells(record)` each) or JSONL by `output`'s suffix, written
    whole or not at all; no output: `terminal` (a table) on stdout."""
    if output is None:
        sys.stdout.write(terminal)
        return
    suffix = output.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise ConfigError(f"--output {output}: name a .csv or .jsonl file.")
    if suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(cells(r) for r in records)
        text = buffer.getvalue()
    else:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    write_atomic(output, lambda f: f.write(text))


def write_predictions(records: list[dict[str, Any]], output: Path | None) -> None:
    """Class predictions as CSV, JSONL or a table (see `write_records`)."""

    def cells(r: dict[str, Any]) -> list[Any]:
        values = (r.get("class", ""), r.get("probability", ""), _top_k_text(r), r.get("error", ""))
        return [r["id"], *values]

    terminal = table(records) if output is None else ""
    write_records(
        records, output, terminal, ["id", "class", "probability", "top_k", "error"], cells
    )
