"""An on-disk cache of a series source too large for memory: one float32 record per series.

The user's files (a series CSV per split, or a UCR dataset's two `.tsv` files) are read once,
line by line as they stream by, with the same reader, checks and errors as in memory, and each
series is appended as it is parsed to `records.bin`: fixed-size float32 records of shape
(T, F), series i at byte i * T * F * 4, read back in batches by `RecordCache` (pread rather than
a memory map: pages a map touches would count in the process's resident memory). Labels are
codes into the class names (`labels.npy`, `splits.json`), with the count of series per split.

The directory is keyed by the files (path, size, mtime) and the settings that shape the
records (format, label column, features, max_examples), and built whole or not at all
(`cache.build_dir`): a re-run reuses it, a changed file or setting builds another, a build
killed midway is never trusted.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from archlab.data.cache import RECORDS, RecordCache, build_dir, files_key, write_meta
from archlab.errors import DataError

FORMAT_VERSION = 1
_LABELS, _SPLITS = "labels.npy", "splits.json"


@dataclass(frozen=True)
class SeriesSource:
    """What a series source gives the cache: its file per split (in reading order), a reader
    of one file's ((T, F) float32 values, label) pairs, and the settings that shape them."""

    kind: str  # names the cache directory, e.g. "series-csv"
    splits: dict[str, str]
    read: Callable[[Path], Iterator[tuple[np.ndarray, str]]]
    settings: dict[str, Any]

    def key(self) -> str:
        shape = [FORMAT_VERSION, self.kind, self.settings, list(self.splits)]
        return files_key(shape, self.splits.values())


class SeriesCache(RecordCache):
    """A complete series cache: records read by index, labels and per-split counts."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        meta = json.loads((path / _SPLITS).read_text())
        self.sizes: dict[str, int] = meta["sizes"]
        self.classes: list[str] = meta["classes"]

    def labels(self) -> np.ndarray:
        """The label of every series (str), in record order."""
        return np.array(self.classes, dtype=str)[np.load(self.path / _LABELS)]


def _write_series(source: SeriesSource, tmp: Path) -> None:
    codes, classes, sizes = array("i"), {}, {}
    first: tuple[Path, tuple[int, ...]] | None = None
    with open(tmp / RECORDS, "wb") as f:
        for split, name in source.splits.items():
            file, before = Path(name), len(codes)
            for values, label in source.read(file):
                if first is None:
                    first = (file, values.shape)
                elif values.shape != first[1]:
                    raise DataError(_shape_mismatch(file, values.shape, *first))
                f.write(values.tobytes())
                codes.append(classes.setdefault(label, len(classes)))
            sizes[split] = len(codes) - before
    np.save(tmp / _LABELS, np.frombuffer(codes, dtype=np.int32))
    write_meta(tmp, len(codes), first[1], "float32", [])
    (tmp / _SPLITS).write_text(json.dumps({"sizes": sizes, "classes": list(classes)}))


def _shape_mismatch(file: Path, shape: tuple[int, ...], first: Path, expected: tuple) -> str:
    return (
        f"{file}: series have length {shape[0]} ({shape[1]} feature(s) per step), but those "
        f"in {first.name} have length {expected[0]} ({expected[1]}). Every split's series must "
        "have the same length and features; resample one of the files."
    )


def build_series(source: SeriesSource, root: Path) -> tuple[SeriesCache, bool]:
    """The series cache of `source` under `root` (read now if missing) and whether reused."""
    path, reused = build_dir(
        root, f"{source.kind}-{source.key()}", lambda tmp: _write_series(source, tmp)
    )
    return SeriesCache(path), reused
