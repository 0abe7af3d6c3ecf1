"""Readers for labelled text: CSV/JSONL tables, class folders of .txt files, and a built-in
task made from the Python standard library's own docstrings.

All readers decode strictly as UTF-8 (a leading BOM is dropped) and report the file and line
of any bad byte, because silently replaced characters would change what the tokenizer learns.
"""

from __future__ import annotations

import ast
import csv
import inspect
import json
import sysconfig
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from archlab.data.sources.tables import json_line, read_header
from archlab.data.sources.utf8 import decode_utf8, utf8_lines
from archlab.errors import DataError

__all__ = [
    "iter_labelled_rows",
    "iter_text_table",
    "load_stdlib_docstrings",
    "load_text_folder",
    "load_text_table",
]

_TABLE_SUFFIXES = (".csv", ".jsonl")


def _label_from_json(value: object, path: Path, line: int, field: str) -> str:
    """Turn a JSON label (string, integer or boolean) into its string form."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int, float)):
        label = str(value).strip()
        if label:
            return label
    raise DataError(
        f"{path}, line {line}: the label field {field!r} is {json.dumps(value)}. Labels must be "
        "a non-empty string or a number."
    )


def _iter_csv_rows(
    lines: Iterable[str], path: Path, text_field: str, label_field: str | None
) -> Iterator[tuple[int, str, str]]:
    """Yield (line, text, label) from a CSV with a header row; label "" without a field."""
    reader = csv.reader(lines)
    found = read_header(reader)
    if found is None:
        return
    header, header_line = found
    indices = {}
    fields = [f for f in (text_field, label_field) if f is not None]
    for field in fields:
        if field not in header:
            raise DataError(
                f"{path}, line {header_line}: the header has no column {field!r}. The available "
                f"columns are: {header}. Set the text/label field to one of them."
            )
        indices[field] = header.index(field)
    previous_end = header_line
    for row in reader:
        line = previous_end + 1  # first physical line of this record (quoted fields may span)
        previous_end = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            raise DataError(
                f"{path}, line {line}: {len(row)} fields, but the header has {len(header)}. "
                'Quote text that contains commas ("...") so it stays one field.'
            )
        present = header[: len(row)]
        for field in fields:
            if indices[field] >= len(row):
                raise DataError(
                    f"{path}, line {line}: the row has no {field!r} field (it has only "
                    f"{len(row)} of the {len(header)} header columns; present: {present}). "
                    "Fill in the missing fields."
                )
        label = row[indices[label_field]].strip() if label_field is not None else ""
        yield line, row[indices[text_field]], label


def _iter_jsonl_rows(
    lines: Iterable[str], path: Path, text_field: str, label_field: str | None
) -> Iterator[tuple[int, str, str]]:
    """Yield (line, text, label) from a JSON Lines file of objects; label "" without a field."""
    for line, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        obj = json_line(raw, path, line)
        if not isinstance(obj, dict):
            raise DataError(
                f"{path}, line {line}: expected a JSON object ({{...}}), got "
                f"{type(obj).__name__}. Each line must hold one object with the text and label."
            )
        for field in (f for f in (text_field, label_field) if f is not None):
            if field not in obj:
                raise DataError(
                    f"{path}, line {line}: the object has no {field!r} field. Available fields: "
                    f"{sorted(obj)}. Set the text/label field to one of them or fix the line."
                )
        value = obj[text_field]
        if not isinstance(value, str):
            raise DataError(
                f"{path}, line {line}: the text field {text_field!r} is "
                f"{type(value).__name__}, not a string. Store the text as a JSON string."
            )
        if label_field is None:
            yield line, value, ""
        else:
            yield line, value, _label_from_json(obj[label_field], path, line, label_field)


def iter_text_table(path: Path, text_field: str) -> Iterator[tuple[int, str]]:
    """(line, text) of each row of a `.csv` or `.jsonl` file, labels not needed; empty
    texts are yielded too, for the caller to refuse one by one."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _TABLE_SUFFIXES:
        raise DataError(
            f"{path}: unsupported text table format {path.suffix or '(no suffix)'!r}. Supported: "
            f"{list(_TABLE_SUFFIXES)}."
        )
    lines = utf8_lines(path, "text table")
    rows = (_iter_csv_rows if suffix == ".csv" else _iter_jsonl_rows)(lines, path, text_field, None)
    for line, body, _ in rows:
        yield line, body


def load_text_table(path: Path, text_field: str, label_field: str) -> tuple[list[str], np.ndarray]:
    """Load labelled texts from a `.csv` (header row) or `.jsonl` file as (texts, str labels)."""
    texts: list[str] = []
    labels: list[str] = []
    for body, label in iter_labelled_rows(path, text_field, label_field):
        texts.append(body)
        labels.append(label)
    return texts, np.array(labels, dtype=str)


def iter_labelled_rows(path: Path, text_field: str, label_field: str) -> Iterator[tuple[str, str]]:
    """(text, label) of each row of a `.csv` (header row) or `.jsonl` file, read line by line
    as the file streams by (so a table larger than memory can be cached).

    The format is chosen by suffix so that a mis-named file fails loudly instead of being
    parsed with the wrong rules.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _TABLE_SUFFIXES:
        raise DataError(
            f"{path}: unsupported text table format {path.suffix or '(no suffix)'!r}. Supported: "
            f"{list(_TABLE_SUFFIXES)} (CSV with a header row, or JSON Lines with one object per "
            "line)."
        )
    lines = utf8_lines(path, "text table")
    rows = (_iter_csv_rows if suffix == ".csv" else _iter_jsonl_rows)(
        lines, path, text_field, label_field
    )
    count = 0
    for line, body, label in rows:
        if not body.strip():
            raise DataError(
                f"{path}, line {line}: the text field {text_field!r} is empty. Remove the row "
                "or fill in its text."
            )
        if not label:
            raise DataError(
                f"{path}, line {line}: the label field {label_field!r} is empty. Give every "
                "row a label, or drop unlabelled rows."
            )
        count += 1
        yield body, label
    if not count:
        raise DataError(
            f"{path}: no data rows. Expected "
            + (
                "a header row and one row per example."
                if suffix == ".csv"
                else "one JSON object per line."
            )
        )


def _is_txt(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".txt" and not path.name.startswith(".")


def load_text_folder(
    root: Path, skipped: list[tuple[str, str]] | None = None
) -> tuple[list[str], np.ndarray]:
    """Load `root/<class>/*.txt`, one example per file, labelled by folder name.

    Classes and files are sorted by name so the example order, and hence any seeded split,
    is the same on every machine. An unreadable, binary or empty file stops with a DataError,
    unless `skipped` is a list: then it is left out and (path, reason) appended there.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: text folder not found. Check the path in your config.")
    if not root.is_dir():
        raise DataError(
            f"{root}: expected a directory laid out as <root>/<class>/*.txt, but this is a file."
        )
    class_dirs = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )
    if not class_dirs:
        stray = sorted(p.name for p in root.iterdir() if _is_txt(p))
        hint = (
            f" It holds .txt files directly ({stray[:5]}...): move them into one subfolder per "
            "class."
            if stray
            else ""
        )
        raise DataError(
            f"{root}: no class subfolders. Lay the data out as <root>/<class>/<example>.txt, "
            f"one folder per class.{hint}"
        )
    texts: list[str] = []
    labels: list[str] = []
    for class_dir in class_dirs:
        files = sorted((p for p in class_dir.iterdir() if _is_txt(p)), key=lambda p: p.name)
        if not files:
            raise DataError(
                f"{class_dir}: class folder holds no .txt files. Each class folder needs at "
                "least one <example>.txt (remove empty or unrelated folders)."
            )
        for file in files:
            try:
                body = _read_example(file)
            except DataError as err:
                if skipped is None:
                    raise
                skipped.append((str(file), str(err)))
                continue
            texts.append(body)
            labels.append(class_dir.name)
    if not texts:
        raise DataError(f"{root}: none of the .txt files could be read.")
    return texts, np.array(labels, dtype=str)


def _read_example(file: Path) -> str:
    try:
        data = file.read_bytes()
    except OSError as err:
        raise DataError(f"{file}: cannot read this file ({err.strerror}).") from None
    body = decode_utf8(data, file)
    if not body.strip():
        raise DataError(f"{file}: the file is empty. Remove it or fill in its text.")
    return body


def _stdlib_files(stdlib: Path, package: str) -> list[Path]:
    """The `.py` files of a stdlib package or module, test folders excluded, sorted."""
    pkg_dir = stdlib / package
    if pkg_dir.is_dir():
        return sorted(
            (
                p
                for p in pkg_dir.rglob("*.py")
                if not {"test", "tests"} & set(p.relative_to(pkg_dir).parts[:-1])
            ),
            key=lambda p: p.relative_to(pkg_dir).as_posix(),
        )
    module = stdlib / f"{package}.py"
    if module.is_file():
        return [module]
    raise DataError(
        f"Python standard-library package {package!r} not found: searched {stdlib} for "
        f"{package}/ and {package}.py. Use a pure-Python stdlib package name such as 'json', "
        "'email' or 'logging'."
    )


def _docstrings(tree: ast.AST) -> Iterator[str]:
    """Docstrings of the module, classes and functions, in source (depth-first) order."""
    if isinstance(tree, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        doc = ast.get_docstring(tree, clean=False)
        if doc:
            yield " ".join(inspect.cleandoc(doc).split())
    for child in ast.iter_child_nodes(tree):
        yield from _docstrings(child)


def load_stdlib_docstrings(
    packages: Sequence[str], min_chars: int = 40, max_per_class: int | None = None
) -> tuple[list[str], np.ndarray]:
    """Docstrings of stdlib packages labelled by package: a text task that needs no download.

    Sources are parsed with `ast`, never imported. Docstrings shorter than `min_chars` (after
    whitespace collapsing) are dropped, exact duplicates within a package are kept once, and
    texts found in more than one package are dropped since their label would be ambiguous.
    With `max_per_class`, an evenly spaced subset is taken so every module stays represented.
    The result depends only on the running interpreter's standard library.
    """
    if isinstance(packages, str):
        packages = [packages]
    if not packages:
        raise DataError(
            "load_stdlib_docstrings: no packages given. Name at least two, e.g. ['json', 'email']."
        )
    if len(set(packages)) != len(packages):
        raise DataError(f"load_stdlib_docstrings: duplicate package names in {list(packages)}.")
    if max_per_class is not None and max_per_class < 1:
        raise DataError(f"max_per_class must be a positive integer or None, got {max_per_class}.")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    per_package: dict[str, list[str]] = {}
    for package in packages:
        seen: set[str] = set()
        docs: list[str] = []
        for file in _stdlib_files(stdlib, package):
            try:
                tree = ast.parse(file.read_bytes(), filename=str(file))
            except (SyntaxError, ValueError) as err:
                raise DataError(
                    f"{file}: this standard-library file cannot be parsed ({err}). Leave the "
                    f"package {package!r} out of the list."
                ) from None
            for doc in _docstrings(tree):
                if len(doc) >= min_chars and doc not in seen:
                    seen.add(doc)
                    docs.append(doc)
        per_package[package] = docs
    counts: dict[str, int] = {}
    for docs in per_package.values():
        for doc in docs:
            counts[doc] = counts.get(doc, 0) + 1
    texts: list[str] = []
    labels: list[str] = []
    for package, docs in per_package.items():
        docs = [doc for doc in docs if counts[doc] == 1]
        if not docs:
            raise DataError(
                f"{stdlib / package}: no docstrings of at least {min_chars} characters. "
                "Lower min_chars or choose another package."
            )
        if max_per_class is not None and len(docs) > max_per_class:
            docs = [docs[(i * len(docs)) // max_per_class] for i in range(max_per_class)]
        texts.extend(docs)
        labels.extend([package] * len(docs))
    return texts, np.array(labels, dtype=str)
