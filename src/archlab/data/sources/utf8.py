"""Strict UTF-8 reading shared by the text-based formats.

Silently replaced characters would change what a tokenizer learns or a number parses to, so
a bad byte is an error naming the file and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from archlab.errors import DataError


def decode_utf8(data: bytes, path: Path) -> str:
    """Decode bytes as strict UTF-8 (a leading BOM is dropped), naming the first bad line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: bytes that are not valid UTF-8 ({err.reason}). "
            "Re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
        ) from None


def read_utf8(path: Path, what: str) -> str:
    """A whole file as strict UTF-8, with a clear error when it is missing."""
    if not path.exists():
        raise DataError(f"{path}: {what} not found. Check the path in your config.")
    if not path.is_file():
        raise DataError(f"{path}: expected a {what}, but this path is not a regular file.")
    return decode_utf8(path.read_bytes(), path)


def utf8_lines(path: Path, what: str) -> Iterator[str]:
    """The lines of a file (ends kept), decoded as strict UTF-8 as the file streams by, a
    leading BOM dropped; the same errors as `read_utf8`, naming the line of a bad byte."""
    if not path.exists():
        raise DataError(f"{path}: {what} not found. Check the path in your config.")
    if not path.is_file():
        raise DataError(f"{path}: expected a {what}, but this path is not a regular file.")
    with open(path, "rb") as raw:
        for line, data in enumerate(raw, start=1):
            try:
                yield data.decode("utf-8-sig" if line == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path}, line {line}: bytes that are not valid UTF-8 ({err.reason}). "
                    "Re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
                ) from None
