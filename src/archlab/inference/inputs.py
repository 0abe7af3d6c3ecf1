"""New inputs for `archlab-predict`, read with archlab's own readers and prepared with the run's
fitted transforms. An input that cannot fit the model is refused alone, with its reason; an
input the model can take after a usual fix-up (resized, converted, padded, truncated) is fixed
and the fix is said once per kind."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from archlab.data.sources.images import IMAGE_SUFFIXES, read_image
from archlab.data.sources.series import load_series_csv, load_ucr_file
from archlab.data.sources.texts import iter_text_table
from archlab.data.sources.utf8 import read_utf8
from archlab.data.tokenizers import Tokenizer
from archlab.data.transforms import image_tensor, series_tensor, text_tensor
from archlab.errors import ArchlabError, DataError
from archlab.inference.loader import TrainedModel
from archlab.models import ImageSpec, SequenceSpec

_MODES = {1: "L", 3: "RGB"}
_DIGITS_MAX = 16.0  # scikit-learn's digits hold ink as 0-16, image files as 0-255
_TEXT_FILES = (".txt",)
_TABLE_FILES = (".csv", ".jsonl")
_SERIES_FILES = (".csv", ".tsv")


@dataclass
class Inputs:
    """Every input in the order given as (id, None) or (id, reason refused); the prepared
    tensors of the accepted ones, in the same order; and how many got each fix-up."""

    order: list[tuple[str, str | None]] = field(default_factory=list)
    rows: list[torch.Tensor] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)

    def add(self, ids: list[str], x: torch.Tensor) -> None:
        self.order += [(i, None) for i in ids]
        self.rows.append(x)

    def refuse(self, ident: str, reason: str) -> None:
        self.order.append((ident, reason))

    def note(self, what: str, count: int = 1) -> None:
        self.notes[what] = self.notes.get(what, 0) + count

    @property
    def tensor(self) -> torch.Tensor:
        return torch.cat(self.rows) if self.rows else torch.empty(0)


def _expand(paths: list[Path], suffixes: tuple[str, ...]) -> Iterator[Path]:
    """Files as given; folders walked (sorted, hidden files skipped) for `suffixes`."""
    for path in paths:
        if not path.exists():
            raise DataError(f"{path} does not exist: give files or folders to predict on.")
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
            )
            if not found:
                raise DataError(f"{path}: no {', '.join(suffixes)} files in this folder.")
            yield from found
        else:
            yield path


def _images(model: TrainedModel, paths: list[Path], out: Inputs) -> None:
    spec = model.spec
    assert isinstance(spec, ImageSpec)
    mode, size = _MODES.get(spec.channels), (spec.height, spec.width)
    digits = model.cfg.data.source == "digits"
    for path in _expand(paths, IMAGE_SUFFIXES):
        try:
            with Image.open(path) as img:
                original_mode, (width, height) = img.mode, img.size
        except (OSError, UnidentifiedImageError):
            out.refuse(str(path), "not a readable image")
            continue
        if mode is None:
            out.refuse(str(path), f"the model reads {spec.channels}-channel images")
            continue
        try:
            pixels = read_image(path, mode, size)
        except DataError as error:
            out.refuse(str(path), str(error))
            continue
        if (height, width) != size:
            out.note(f"resized to the model's {size[0]}x{size[1]} pixels")
        if original_mode != mode:
            out.note(f"converted from {original_mode} to the model's {mode} mode")
        array = pixels[None].astype(np.float32)
        if digits:
            array *= _DIGITS_MAX / 255.0
            out.note("scaled from 0-255 to the 0-16 range of the digits the model learnt")
        out.add([str(path)], image_tensor(array, model.fitted))


def _series_file(path: Path, label_column: str, features: int) -> np.ndarray:
    """(N, T, F) values of a CSV (label column dropped if present) or UCR .tsv file."""
    if path.suffix.lower() == ".tsv":
        return load_ucr_file(path)[0]
    header = read_utf8(path, "series CSV file").split("\n", 1)[0]
    has_label = label_column in [name.strip() for name in header.split(",")]
    return load_series_csv(path, label_column if has_label else None, features)[0]


def _series(model: TrainedModel, paths: list[Path], out: Inputs) -> None:
    spec = model.spec
    assert isinstance(spec, SequenceSpec)
    label_column = str(model.cfg.data.get("label_column") or "label")
    for path in _expand(paths, _SERIES_FILES):
        if path.suffix.lower() not in _SERIES_FILES:
            out.refuse(str(path), "not a series file (.csv or UCR .tsv)")
            continue
        try:
            values = _series_file(path, label_column, spec.features)
        except ArchlabError as error:
            out.refuse(str(path), str(error))
            continue
        _, steps, features = values.shape
        ids = [f"{path}:{i + 1}" for i in range(len(values))]
        if features != spec.features:
            reason = f"{features} features per step, the model reads {spec.features}"
            for i in ids:
                out.refuse(i, reason)
            continue
        if steps > spec.length:
            reason = f"{steps} steps, the model reads {spec.length}: trim or resample the series"
            for i in ids:
                out.refuse(i, reason)
            continue
        x = series_tensor(values, model.fitted)
        if steps < spec.length:  # padded with 0 after standardising: the training mean
            x = torch.cat([x, x.new_zeros(len(x), spec.length - steps, features)], 1)
            out.note(
                f"padded at the end to the model's {spec.length} steps (with the mean)", len(x)
            )
        out.add(ids, x)


def text_rows(paths: list[Path], field_name: str) -> list[tuple[str, str]]:
    """(id, text) of every line of .txt files and of `field_name` in .csv / .jsonl files."""
    rows: list[tuple[str, str]] = []
    for path in _expand(paths, _TEXT_FILES + _TABLE_FILES):
        if path.suffix.lower() in _TABLE_FILES:
            rows += [(f"{path}:{line}", text) for line, text in iter_text_table(path, field_name)]
        else:
            text = read_utf8(path, "text file")
            rows += [(f"{path}:{n}", line) for n, line in enumerate(text.splitlines(), 1)]
    return rows


def count_truncated(tokenizer: Tokenizer, texts: list[str], length: int) -> int:
    """How many of `texts` hold more than `length` tokens."""
    whole = tokenizer.encode(texts, max(len(t.encode()) for t in texts) + 1)
    return int(((whole != tokenizer.pad_id).sum(1) > length).sum())


def _texts(model: TrainedModel, paths: list[Path], field_name: str | None, out: Inputs) -> None:
    rows = text_rows(paths, field_name or str(model.cfg.data.text_field))
    texts = [text for _, text in rows if text.strip()]
    for ident, text in rows:
        if text.strip():
            out.order.append((ident, None))
        else:
            out.refuse(ident, "empty text")
    if not texts:
        return
    ids = text_tensor(model.tokenizer, texts, model.fitted)
    cut = count_truncated(model.tokenizer, texts, ids.shape[1])
    if cut:
        out.note(f"truncated to the model's {ids.shape[1]} tokens", cut)
    out.rows.append(ids)


def read_inputs(model: TrainedModel, paths: list[Path], field_name: str | None = None) -> Inputs:
    """The inputs in `paths` for `model`'s modality, prepared as its training inputs were."""
    out = Inputs()
    if model.modality == "image":
        _images(model, paths, out)
    elif model.modality == "sequence":
        _series(model, paths, out)
    else:
        _texts(model, paths, field_name, out)
    return out
