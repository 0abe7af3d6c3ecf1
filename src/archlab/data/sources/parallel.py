"""Readers for parallel text: `source<TAB>target` lines (as Tatoeba and Anki export them,
extra columns such as attributions ignored), and CSV / JSON Lines tables with a source and a
target field."""

from __future__ import annotations

from pathlib import Path

from archlab.data.sources.texts import load_text_table
from archlab.data.sources.utf8 import read_utf8
from archlab.errors import DataError

TAB_SUFFIXES = (".tsv", ".txt")
SUFFIXES = (*TAB_SUFFIXES, ".csv", ".jsonl")


def _load_tab_lines(path: Path) -> tuple[list[str], list[str]]:
    sources: list[str] = []
    targets: list[str] = []
    for line, raw in enumerate(read_utf8(path, "parallel text file").splitlines(), start=1):
        if not raw.strip() or raw.startswith("#"):
            continue
        cells = raw.split("\t")
        if len(cells) < 2 or not cells[0].strip() or not cells[1].strip():
            raise DataError(
                f"{path}, line {line}: expected `source<TAB>target` with both sides non-empty, "
                f"got {raw[:60]!r}. Separate the two sides with one tab character."
            )
        sources.append(cells[0].strip())
        targets.append(cells[1].strip())
    if not sources:
        raise DataError(f"{path}: no `source<TAB>target` lines.")
    return sources, targets


def load_parallel(path: Path, source_field: str, target_field: str) -> tuple[list[str], list[str]]:
    """(sources, targets) from a .tsv/.txt file of tab-separated pairs or a .csv/.jsonl table
    (`source_field` and `target_field` name its columns)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in TAB_SUFFIXES:
        return _load_tab_lines(path)
    if suffix not in SUFFIXES:
        raise DataError(
            f"{path}: unsupported parallel text format {path.suffix or '(no suffix)'!r}. "
            f"Supported: {list(SUFFIXES)} (source<TAB>target lines, or a CSV/JSONL table with "
            "data.source_field and data.target_field)."
        )
    sources, targets = load_text_table(path, source_field, target_field)
    return sources, [str(t) for t in targets]
