"""Readers for numeric labelled time series: wide CSV files and the UCR archive `.tsv` layout.

Both return float32 arrays shaped (N, T, F) and labels as a numpy string array, so every
sequence model sees the same layout whatever the file format. Every malformed value is
reported with its file and 1-based line number, because a silent NaN or a shifted column
would otherwise surface much later as a meaningless training curve. Files are read line by
line (`iter_series_csv`, `iter_ucr_file`), so the on-disk cache of a file larger than memory
is filled as it streams by, with the same checks and errors.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from archlab.data.sources.tables import read_header
from archlab.data.sources.utf8 import utf8_lines
from archlab.errors import DataError

__all__ = [
    "iter_series_csv",
    "iter_ucr_file",
    "load_series_csv",
    "load_ucr",
    "load_ucr_file",
    "ucr_files",
]


def _parse_values(
    fields: Sequence[str], names: Sequence[str], path: Path, line: int, nan_hint: str = ""
) -> np.ndarray:
    """Convert one row's value fields to float64, explaining the first bad value precisely."""
    try:
        values = np.array(fields, dtype=np.float64)
    except ValueError:
        values = None
    if values is not None and np.isfinite(values).all():
        return values
    # Slow path: parse field by field to name the first offending one.
    parsed: list[float] = []
    for field, name in zip(fields, names, strict=True):
        text = field.strip()
        if text == "":
            raise DataError(
                f"{path}, line {line}: {name} is empty. Clean or impute missing values "
                f"before loading (e.g. interpolate, or drop the row).{nan_hint}"
            )
        try:
            number = float(text)
        except ValueError:
            raise DataError(
                f"{path}, line {line}: {name} holds {field!r}, which is not a number. "
                "Fix or remove that value; series values must be numeric."
            ) from None
        if not math.isfinite(number):
            raise DataError(
                f"{path}, line {line}: {name} holds {field!r} (not a finite number). Clean or "
                f"impute missing values before loading (e.g. interpolate, or drop the row)."
                f"{nan_hint}"
            )
        parsed.append(number)
    return np.array(parsed, dtype=np.float64)


def load_series_csv(
    path: Path, label_column: str | None, num_features: int = 1, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Load a wide-format series CSV as ((N, T, F) float32 values, (N,) str labels).

    The file has a header row; the column named `label_column` holds the class label and all
    other columns, in file order, are the series values (every column, and labels None, when
    `label_column` is None: unlabelled series). With `num_features` F > 1 the value columns
    are read as T*F values in time-major order (t0f0, t0f1, t1f0, ...). `limit`: at most
    this many rows are read.
    """
    rows, labels = zip(*iter_series_csv(path, label_column, num_features, limit), strict=True)
    return np.stack(rows), (np.array(labels, dtype=str) if label_column is not None else None)


def iter_series_csv(
    path: Path, label_column: str | None, num_features: int = 1, limit: int | None = None
) -> Iterator[tuple[np.ndarray, str | None]]:
    """Each row of a series CSV (see `load_series_csv`) as ((T, F) float32 values, label),
    read line by line as the file streams by, so a file larger than memory can be cached."""
    path = Path(path)
    if not isinstance(num_features, int) or num_features < 1:
        raise DataError(
            f"{path}: num_features must be a positive integer, got {num_features!r}. "
            "Set it to the number of values recorded per time step (1 for a univariate series)."
        )
    reader = csv.reader(utf8_lines(path, "series CSV file"))

    found = read_header(reader)
    if found is None:
        raise DataError(
            f"{path}: the file is empty. Expected a header row naming a {label_column!r} column "
            "and the value columns, followed by one row per series."
        )
    header, header_line = found
    matches = [i for i, name in enumerate(header) if name == label_column]
    if label_column is None:
        matches = [-1]  # no column is the label
    elif not matches:
        raise DataError(
            f"{path}, line {header_line}: no column named {label_column!r} in the header. "
            f"The header columns are: {header}. Set label_column to one of them."
        )
    if len(matches) > 1:
        raise DataError(
            f"{path}, line {header_line}: the header names {label_column!r} {len(matches)} times "
            f"(columns {[i + 1 for i in matches]}). Rename the duplicates so the label column "
            "is unambiguous."
        )
    label_index = matches[0]
    value_names = [
        f"column {name!r}" if name else f"column {i + 1}"
        for i, name in enumerate(header)
        if i != label_index
    ]
    num_values = len(value_names)
    if num_values == 0:
        raise DataError(
            f"{path}, line {header_line}: the header has only the label column {label_column!r} "
            "and no value columns. Add one column per time step (and feature)."
        )
    if num_values % num_features != 0:
        raise DataError(
            f"{path}, line {header_line}: {num_values} value columns cannot be split into "
            f"num_features={num_features} features per time step ({num_values} is not divisible "
            f"by {num_features}). Check num_features or the columns of the file."
        )
    shape = (num_values // num_features, num_features)

    count = 0
    for row in reader:
        line = reader.line_num
        if not any(field.strip() for field in row):
            continue  # blank line
        if limit is not None and count >= limit:
            return
        if len(row) != len(header):
            raise DataError(
                f"{path}, line {line}: {len(row)} fields, but the header has {len(header)}. "
                "Every row needs exactly one value per header column; fix the missing or extra "
                "fields (an unquoted comma inside a value also splits it)."
            )
        label = None
        if label_column is not None:
            label = row[label_index].strip()
            if label == "":
                raise DataError(
                    f"{path}, line {line}: the label column {label_column!r} is empty. "
                    "Give every row a class label, or drop unlabelled rows."
                )
            row = row[:label_index] + row[label_index + 1 :]
        values = _parse_values(row, value_names, path, line)
        count += 1
        yield values.astype(np.float32).reshape(shape), label

    if not count:
        raise DataError(
            f"{path}: the file has a header but no data rows. Add one row per series "
            "(label plus values)."
        )


_UCR_NAN_HINT = (
    " (Variable-length UCR datasets pad short series with NaN; resample them to one length "
    "first, e.g. with the archive's own fixed-length versions.)"
)


def load_ucr_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse one UCR `.tsv` file: label in the first field, values in the rest, no header."""
    rows, labels = zip(*iter_ucr_file(path), strict=True)
    return np.stack(rows), np.array(labels, dtype=str)


def iter_ucr_file(path: Path) -> Iterator[tuple[np.ndarray, str]]:
    """Each line of a UCR `.tsv` file as ((T, 1) float32 values, label), read as the file
    streams by."""
    path = Path(path)
    length: int | None = None
    length_line = 0
    names: list[str] = []
    lines = (
        part for text in utf8_lines(path, "UCR .tsv file") for part in text.splitlines() or [""]
    )
    for line_no, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        fields = raw.split("\t")
        label = fields[0].strip()
        values = fields[1:]
        if len(values) == 0:
            hint = (
                " The line contains commas: UCR files must be tab-separated; convert the "
                "separators to tabs."
                if "," in raw
                else ""
            )
            raise DataError(
                f"{path}, line {line_no}: a label but no values. Each line must be the label "
                f"followed by the series values, separated by tabs.{hint}"
            )
        if label == "":
            raise DataError(
                f"{path}, line {line_no}: the label (first field) is empty. Give every series "
                "a class label."
            )
        if length is None:
            length, length_line = len(values), line_no
            names = [f"value {i + 1} (field {i + 2})" for i in range(length)]
        elif len(values) != length:
            raise DataError(
                f"{path}, line {line_no}: series of length {len(values)}, but line "
                f"{length_line} has length {length}. All series in a file must have the same "
                "length; resample or pad them to one length first."
            )
        values_arr = _parse_values(values, names, path, line_no, _UCR_NAN_HINT)
        yield values_arr.astype(np.float32)[:, None], label
    if length is None:
        raise DataError(
            f"{path}: the file is empty (no data lines). Expected one line per series: "
            "label<TAB>value<TAB>value..."
        )


def ucr_files(path: Path) -> tuple[Path, Path]:
    """Resolve a UCR dataset directory or `_TRAIN.tsv` path to its (train, test) files."""
    if not path.exists():
        raise DataError(
            f"{path}: not found. Pass a UCR dataset directory <Name>/ holding <Name>_TRAIN.tsv "
            "and <Name>_TEST.tsv, or the path of the <Name>_TRAIN.tsv file."
        )
    if path.is_dir():
        train = path / f"{path.name}_TRAIN.tsv"
        if not train.is_file():
            found = sorted(path.glob("*_TRAIN.tsv"))
            if len(found) != 1:
                listing = sorted(p.name for p in path.iterdir())[:20]
                raise DataError(
                    f"{path}: expected {train.name} in this UCR dataset directory"
                    + (
                        f" (found several *_TRAIN.tsv files: {[p.name for p in found]})"
                        if found
                        else ""
                    )
                    + f". It contains: {listing}. Pass the dataset directory or the "
                    "<Name>_TRAIN.tsv file itself."
                )
            train = found[0]
    else:
        if not path.name.endswith("_TRAIN.tsv"):
            raise DataError(
                f"{path}: a UCR dataset path must be the dataset directory <Name>/ or the "
                "<Name>_TRAIN.tsv file (the sibling <Name>_TEST.tsv is then used)."
            )
        train = path
    test = train.with_name(train.name[: -len("_TRAIN.tsv")] + "_TEST.tsv")
    if not test.is_file():
        raise DataError(
            f"{test}: the UCR test file is missing (needed next to {train.name}). "
            "Download the complete dataset folder from the UCR archive."
        )
    return train, test


def load_ucr(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Load a UCR archive dataset as {"train": (X, y), "test": (X, y)} with X (N, T, 1) float32.

    `path` is the dataset directory `<Name>/` or its `<Name>_TRAIN.tsv` file. Labels are kept
    exactly as written (e.g. "-1", "1", "2") so that the label vocabulary matches the archive.
    """
    train_path, test_path = ucr_files(Path(path))
    train = load_ucr_file(train_path)
    test = load_ucr_file(test_path)
    if train[0].shape[1] != test[0].shape[1]:
        raise DataError(
            f"{test_path}: series have length {test[0].shape[1]}, but those in "
            f"{train_path.name} have length {train[0].shape[1]}. Train and test series must "
            "have the same length; resample one of the files."
        )
    return {"train": train, "test": test}
