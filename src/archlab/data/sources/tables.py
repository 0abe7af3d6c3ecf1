"""What the CSV-based formats (series, texts) share: finding the header row."""

from __future__ import annotations

from typing import Any


def read_header(reader: Any) -> tuple[list[str], int] | None:
    """The first non-blank row's cells (stripped) and its line number; None for an empty file.
    `reader` (a `csv.reader`) is left at the row after the header."""
    for row in reader:
        if any(cell.strip() for cell in row):
            return [cell.strip() for cell in row], reader.line_num
    return None
