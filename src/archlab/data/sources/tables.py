"""What the table formats (series and text CSV, JSON Lines, corpora) share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from archlab.errors import DataError


def read_header(reader: Any) -> tuple[list[str], int] | None:
    """The first non-blank row's cells (stripped) and its line number; None for an empty file.
    `reader` (a `csv.reader`) is left at the row after the header."""
    for row in reader:
        if any(cell.strip() for cell in row):
            return [cell.strip() for cell in row], reader.line_num
    return None


def json_line(raw: str, path: Path, line: int) -> Any:
    """One JSON Lines record, or a DataError naming the file, line and column."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise DataError(
            f"{path}, line {line}: invalid JSON ({err.msg} at column {err.colno}). "
            "Each line must hold one JSON object."
        ) from None
