"""Unlabelled text: a corpus of documents read from `.txt`, `.txt.gz` and `.jsonl` files, and
a built-in corpus made of the docstrings and comments of the Python sources on this machine.

Both are generators of documents, read file by file and line by line, so that memory holds
one line (or one blank-line block) at a time and a consumer can stop at any count.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import importlib.metadata
import inspect
import sys
import sysconfig
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from archlab.data.sources.tables import json_line
from archlab.errors import DataError

__all__ = [
    "CORPUS_SUFFIXES",
    "corpus_files",
    "iter_corpus",
    "iter_python_docs",
    "python_docs_fingerprint",
]

CORPUS_SUFFIXES = (".txt", ".txt.gz", ".jsonl")


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in CORPUS_SUFFIXES if name.endswith(s)), None)


def corpus_files(path: Path) -> list[Path]:
    """`path` itself, or the corpus files under a folder (recursively, sorted by path)."""
    if path.is_file():
        if _suffix(path) is None:
            raise DataError(
                f"{path}: unsupported corpus file {path.name!r}. Supported: "
                f"{', '.join(CORPUS_SUFFIXES)} (one document per line or per blank-line block; "
                "JSON Lines: one object per line with the text in data.text_field)."
            )
        return [path]
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and not p.name.startswith(".") and _suffix(p) is not None
    )
    if not files:
        raise DataError(
            f"{path}: no corpus files in this folder (looked for "
            f"{', '.join('*' + s for s in CORPUS_SUFFIXES)}, in sub-folders too)."
        )
    return files


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line without its newline), each line decoded as strict UTF-8 (a leading
    BOM dropped) as the file streams by."""
    opener = gzip.open if _suffix(path) == ".txt.gz" else open
    line = 0
    try:
        with opener(path, "rb") as raw:
            for line, data in enumerate(raw, start=1):
                text = data.decode("utf-8-sig" if line == 1 else "utf-8")
                yield line, text.rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}, line {line}: bytes that are not valid UTF-8 ({err.reason}). "
            "Re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
        ) from None
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read this file ({err}). Replace it.") from None


def _jsonl_documents(path: Path, text_field: str) -> Iterator[str]:
    for line, raw in _lines(path):
        if not raw.strip():
            continue
        obj = json_line(raw, path, line)
        value = obj.get(text_field) if isinstance(obj, dict) else None
        if not isinstance(value, str):
            found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            raise DataError(
                f"{path}, line {line}: no string field {text_field!r} (found: {found}). Set "
                "data.text_field to the field holding the text."
            )
        if value.strip():
            yield value


def _text_documents(path: Path, documents: str) -> Iterator[str]:
    if documents == "line":
        for _, raw in _lines(path):
            if raw.strip():
                yield raw
        return
    block: list[str] = []
    for _, raw in _lines(path):
        if raw.strip():
            block.append(raw)
        elif block:
            yield "\n".join(block)
            block = []
    if block:
        yield "\n".join(block)


def iter_corpus(path: Path, documents: str = "line", text_field: str = "text") -> Iterator[str]:
    """The documents of a corpus file or folder, in file order: one per non-blank line
    (`documents="line"`) or per block of lines up to a blank line (`"block"`) in `.txt` and
    `.txt.gz` files, one per object (its `text_field`) in `.jsonl` files."""
    for file in corpus_files(Path(path)):
        if _suffix(file) == ".jsonl":
            yield from _jsonl_documents(file, text_field)
        else:
            yield from _text_documents(file, documents)


# ---------------------------------------------------------------- Python's own prose
def _python_files(root: Path, exclude: set[str]) -> Iterator[Path]:
    """`.py` files under `root`, sorted; top-level packages in `exclude`, the stdlib's test
    suite and installed packages inside the stdlib folder left out."""
    skip = exclude | {"test", "site-packages", "dist-packages", "idlelib", "lib2to3"}
    for top in sorted(root.iterdir()):
        name = top.name.removesuffix(".py")
        if name in skip or top.name.startswith("."):
            continue
        if top.is_dir():
            yield from sorted(top.rglob("*.py"))
        elif top.suffix == ".py":
            yield top


def _comment_blocks(source: str) -> Iterator[str]:
    """Runs of whole-line `#` comments, joined (shebangs and lint pragmas left out)."""
    block: list[str] = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and not stripped.startswith(("#!", "# noqa", "# type:")):
            block.append(stripped.lstrip("#").strip())
            continue
        if block:
            yield " ".join(" ".join(block).split())
            block = []
    if block:
        yield " ".join(" ".join(block).split())


def _file_prose(path: Path) -> Iterable[str]:
    """Docstrings (whitespace collapsed, as the labelled `stdlib_docs` task has them) and
    comment blocks of one source file; nothing for a file that does not parse."""
    try:
        source = path.read_bytes()
        tree = ast.parse(source, filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return []
    docs = [" ".join(inspect.cleandoc(doc).split()) for doc in _docstrings(tree)]
    return [*docs, *_comment_blocks(source.decode("utf-8", "replace"))]


_SCOPES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
_BLOCKS = ("body", "orelse", "finalbody", "handlers")


def _docstrings(node: ast.AST) -> Iterator[str]:
    """Docstrings of the module, classes and functions: statements are visited, expressions
    are not (a full `ast.walk` spends most of its time in them)."""
    if isinstance(node, _SCOPES):
        doc = ast.get_docstring(node, clean=False)
        if doc:
            yield doc
    for block in _BLOCKS:
        for child in getattr(node, block, ()):
            if isinstance(child, ast.stmt | ast.excepthandler):
                yield from _docstrings(child)


def python_roots() -> list[Path]:
    """The standard library, then the installed packages, of the running interpreter."""
    paths = sysconfig.get_paths()
    roots = [Path(paths["stdlib"]), Path(paths["purelib"])]
    return [r for i, r in enumerate(roots) if r.is_dir() and r not in roots[:i]]


def iter_python_docs(
    exclude: Sequence[str] = (), held_out: Iterable[str] = (), min_chars: int = 40
) -> Iterator[str]:
    """Docstrings and comment blocks of the standard library and installed packages, each
    text once, in a fixed order (stdlib, then site-packages, files sorted by path).

    Nothing is imported or downloaded: the sources are parsed with `ast`. The top-level
    packages in `exclude` are skipped, and so is any text in `held_out` (e.g. a labelled
    task's docstrings, so that pretraining never sees its test inputs).
    """
    seen = set(held_out)
    skip = set(exclude)
    for root in python_roots():
        for file in _python_files(root, skip):
            for text in _file_prose(file):
                if len(text) >= min_chars and text not in seen:
                    seen.add(text)
                    yield text


def python_docs_fingerprint(extraction: Sequence[Path]) -> dict[str, object]:
    """What the built-in corpus depends on besides its arguments: the interpreter, the
    installed distributions and their versions, and the source of the `extraction` modules."""
    roots = python_roots()
    installed = importlib.metadata.distributions(path=[str(r) for r in roots[1:]])
    return {
        "python": sys.version,
        "roots": [str(r) for r in roots],
        "distributions": sorted({f"{d.metadata['Name']}=={d.version}" for d in installed}),
        "extraction": [hashlib.sha256(p.read_bytes()).hexdigest() for p in extraction],
    }
