"""A built-in corpus extracted once, then read back from disk: `<cache dir>/<name>-<key>.jsonl`.

The key is a hash of what determines the documents (for `python_docs`: the interpreter, the
installed distributions, the extraction code and its settings), so a changed environment gets
another file. The first line holds the document count and the SHA-256 of the rest; a file that
does not match them is said in one line and extracted again. The documents are written to a
temporary file while the consumer reads them, and renamed into place only when the extraction
ran to its end: a consumer that stops early (`data.max_examples`) or a crash leaves no cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any, BinaryIO

FORMAT_VERSION = 1
_HEADER_BYTES = 128  # a fixed-width first line, written last


def cache_path(root: Path, name: str, key: Mapping[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps([FORMAT_VERSION, key], sort_keys=True).encode())
    return root / f"{name}-{digest.hexdigest()[:20]}.jsonl"


def _read(path: Path) -> list[str]:
    """The documents of a complete cache file; ValueError when it is not one."""
    with path.open("rb") as f:
        header = json.loads(f.readline())
        body = f.read()
    if hashlib.sha256(body).hexdigest() != header["sha256"]:
        raise ValueError("its content does not match its checksum")
    docs = [json.loads(line) for line in body.splitlines()]
    if len(docs) != header["count"] or not all(isinstance(d, str) for d in docs):
        raise ValueError("it does not hold the documents its header counts")
    return docs


def _extract_and_write(
    path: Path, extract: Callable[[], Iterator[str]], say: Callable[[str], None]
) -> Iterator[str]:
    """`extract()`'s documents as they come; the file is renamed into place once all are read.
    A cache that cannot be written (no permission, full disk) is said, and left out."""
    tmp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex[:8]}"
    digest, count, f = hashlib.sha256(), 0, None
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            f = tmp.open("wb")
            f.write(b" " * (_HEADER_BYTES - 1) + b"\n")  # the header's place, written last
            say(f"data: extracting the corpus once into {path} (later runs read it there).")
        except OSError as err:
            f = _give_up(f, path, err, say)
        for doc in extract():
            if f is not None:
                line = json.dumps(doc, ensure_ascii=False).encode() + b"\n"
                digest.update(line)
                count += 1
                try:
                    f.write(line)
                except OSError as err:
                    f = _give_up(f, path, err, say)
            yield doc
        if f is not None:
            header = json.dumps({"count": count, "sha256": digest.hexdigest()}).encode()
            try:
                f.seek(0)
                f.write(header.ljust(_HEADER_BYTES - 1) + b"\n")
                f.flush()
                os.fsync(f.fileno())
                f.close()
                os.replace(tmp, path)  # atomic: the cache appears complete or not at all
            except OSError as err:
                f = _give_up(f, path, err, say)
    finally:
        if f is not None:
            f.close()
        with suppress(OSError):  # none was written when its folder could not be made
            tmp.unlink(missing_ok=True)


def _give_up(f: BinaryIO | None, path: Path, err: OSError, say: Callable[[str], None]) -> None:
    say(f"data: cannot write the corpus cache {path} ({err.strerror or err}); not cached.")
    if f is not None:
        f.close()


def cached_documents(
    path: Path, extract: Callable[[], Iterator[str]], say: Callable[[str], None]
) -> Iterator[str]:
    """The documents cached at `path`, else those of `extract()`, cached as they are read."""
    if path.is_file():
        try:
            docs = _read(path)
        except (OSError, ValueError, KeyError, TypeError) as err:
            say(f"data: the corpus cache {path} is unreadable ({err}); extracting it again.")
            path.unlink(missing_ok=True)
        else:
            yield from docs
            return
    yield from _extract_and_write(path, extract, say)
