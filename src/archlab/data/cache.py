"""An on-disk cache of decoded examples: one file of fixed-size records per source and settings.

A `RecordSource` lists its items cheaply (paths and labels) and decodes one item into a
fixed-shape numpy array. `build_cache` decodes every item once, in worker processes, into
`records.bin` (item i at byte i * record_bytes) under a directory named by a hash of the
source files (path, size, mtime) and of the settings that shape the records. A re-run with
the same files and settings reuses it; any change gives another key, hence a rebuild.

The build writes into a temporary directory and renames it into place only when complete,
so a crash (kill -9, full disk) never leaves a directory that a later run trusts. A file lock
per key makes concurrent builders (the ranks of a DDP run, two sweep jobs) build it once.

Records are read back with `os.pread`, not a memory map: pages a memory map touches count in
the process's resident memory, which would then grow with the dataset over an epoch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from filelock import FileLock

from archlab.errors import DataError

FORMAT_VERSION = 1
RECORDS, META = "records.bin", "meta.json"


class RecordSource(Protocol):
    """What a source gives the cache. `decode` runs in worker processes: the source must pickle."""

    kind: str  # names the cache directory, e.g. "images"
    items: Sequence[str]  # one decodable item per example, in a stable order (file paths)
    shape: tuple[int, ...]  # of every decoded record
    dtype: str  # numpy dtype name of the records

    def settings(self) -> dict[str, Any]:
        """Everything besides the files that changes what `decode` returns."""
        ...

    def decode(self, item: str) -> np.ndarray:
        """The record for `item`; raises DataError naming the item when it is unreadable."""
        ...


@dataclass(frozen=True)
class BadInput:
    """An item that could not be decoded, and why (for the run record)."""

    index: int
    item: str
    reason: str


def default_cache_dir() -> Path:
    """`$ARCHLAB_CACHE_DIR`, else `$XDG_CACHE_HOME/archlab/data`, else ~/.cache/archlab/data."""
    if os.environ.get("ARCHLAB_CACHE_DIR"):
        return Path(os.environ["ARCHLAB_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "archlab" / "data"


def cache_key(source: RecordSource) -> str:
    """Hash of the items' paths, sizes and mtimes, the record layout and the source settings."""
    layout = {"version": FORMAT_VERSION, "shape": list(source.shape), "dtype": source.dtype}
    return files_key([layout, source.settings()], source.items)


def files_key(settings: Any, files: Iterable[str | Path]) -> str:
    """Hash of `settings` (JSON) and of each file's path, size and mtime."""
    digest = hashlib.sha256()
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for item in files:
        try:
            stat = os.stat(item)
        except OSError as err:
            raise DataError(f"{item}: cannot read this file ({err.strerror}).") from None
        digest.update(f"{item}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _writable(root: Path) -> None:
    """One clear error when the cache directory cannot be created or written."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise DataError(
            f"data.cache_dir={root}: cannot write the preprocessing cache there "
            f"({err.strerror or err}). Set data.cache_dir=<a writable folder> "
            "(or data.in_memory=true for data that fits in memory)."
        ) from None


_worker_source: RecordSource | None = None  # set once per cache-building process


def _init_worker(source: RecordSource) -> None:
    global _worker_source
    _worker_source = source


def _decode_in_worker(items: list[str]) -> list[tuple[bytes | None, str]]:
    return _decode_chunk(_worker_source, items)


def _decode_chunk(source: RecordSource, items: list[str]) -> list[tuple[bytes | None, str]]:
    """Records of `items` as bytes (None and the reason for those that fail)."""
    out: list[tuple[bytes | None, str]] = []
    for item in items:
        try:
            record = source.decode(item)
        except DataError as err:
            out.append((None, str(err)))
            continue
        if record.shape != tuple(source.shape):
            out.append((None, f"{item}: decodes to shape {record.shape}, not {source.shape}."))
            continue
        out.append((np.ascontiguousarray(record, dtype=source.dtype).tobytes(), ""))
    return out


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _decode_all(source: RecordSource, workers: int) -> Iterator[tuple[bytes | None, str]]:
    """Every item's record in order, decoded by `workers` processes (at most 4 chunks ahead)."""
    chunks = _chunks(source.items, 256)
    if workers <= 1:
        for chunk in chunks:
            yield from _decode_chunk(source, chunk)
        return
    # The source (with its item list) goes to each process once, not with every chunk.
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(source,)) as pool:
        pending = []
        for chunk in chunks:
            pending.append(pool.submit(_decode_in_worker, chunk))
            if len(pending) > 4 * workers:
                yield from pending.pop(0).result()
        for future in pending:
            yield from future.result()


def _write_records(source: RecordSource, tmp: Path, workers: int, on_bad: str) -> None:
    blank = bytes(int(np.prod(source.shape)) * np.dtype(source.dtype).itemsize)
    bad: list[dict[str, Any]] = []
    with open(tmp / RECORDS, "wb") as f:
        for index, (record, reason) in enumerate(_decode_all(source, workers)):
            if record is None:
                if on_bad == "stop":
                    raise DataError(f"{reason} Or set data.on_bad=skip to leave such files out.")
                bad.append({"index": index, "item": source.items[index], "reason": reason})
            f.write(blank if record is None else record)
    write_meta(tmp, len(source.items), source.shape, source.dtype, bad)


def write_meta(
    tmp: Path, count: int, shape: Sequence[int], dtype: str, bad: list[dict[str, Any]]
) -> None:
    """The `meta.json` that `RecordCache` reads beside `records.bin` (flushed to disk)."""
    (tmp / META).write_text(
        json.dumps({"count": count, "shape": list(shape), "dtype": dtype, "bad": bad})
    )


def _sync(folder: Path) -> None:
    for file in folder.iterdir():
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def build_dir(root: Path, name: str, write: Callable[[Path], None]) -> tuple[Path, bool]:
    """`root/name` and whether it was reused; built now by `write(folder)` if missing.

    `write` fills a temporary directory, which is synced and renamed into place only when
    complete: `root/name` appears whole or not at all, so a directory that exists is trusted.
    A file lock per name makes concurrent builders (DDP ranks, sweep jobs) build it once.
    """
    _writable(root)
    final = root / name
    with FileLock(str(final) + ".lock"):
        if final.is_dir():
            return final, True
        for stale in root.glob(f".tmp-{name}-*"):  # a crashed build of this key
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            write(tmp)
            _sync(tmp)
            os.replace(tmp, final)  # atomic: `final` appears complete or not at all
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final, False


class RecordCache:
    """A complete cache directory: records read by index, and the items that failed to decode."""

    def __init__(self, path: Path) -> None:
        self.path = path
        meta = json.loads((path / META).read_text())
        self.count: int = meta["count"]
        self.shape = tuple(meta["shape"])
        self.dtype = np.dtype(meta["dtype"])
        self.bad = [BadInput(b["index"], b["item"], b["reason"]) for b in meta["bad"]]
        self.record_bytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self._fd: tuple[int, int] | None = None  # (pid, fd): opened anew in each worker

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None}

    def _file(self) -> int:
        if self._fd is None or self._fd[0] != os.getpid():
            self._fd = (os.getpid(), os.open(self.path / RECORDS, os.O_RDONLY))
        return self._fd[1]

    def read(self, indices: np.ndarray) -> np.ndarray:
        """Records at `indices` as one (len(indices), *shape) array, read straight into it; a
        run of consecutive indices (evaluation order) is one read."""
        fd, size = self._file(), self.record_bytes
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(indices), *self.shape), dtype=self.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        if len(indices) and np.all(np.diff(indices) == 1):
            self._read_into(fd, view, int(indices[0]) * size)
        else:
            for row, index in enumerate(indices):
                self._read_into(fd, view[row * size : (row + 1) * size], int(index) * size)
        return out

    def _read_into(self, fd: int, buffer: memoryview, offset: int) -> None:
        if os.preadv(fd, [buffer], offset) != len(buffer):
            raise DataError(
                f"{self.path / RECORDS}: shorter than its meta.json says; the cache was "
                f"changed after it was built. Delete {self.path} to rebuild it."
            )


def build_cache(
    source: RecordSource, root: Path, *, workers: int, on_bad: str = "stop"
) -> tuple[RecordCache, bool]:
    """The cache of `source` under `root` (built now if missing) and whether it was reused."""
    name = f"{source.kind}-{cache_key(source)}"
    path, reused = build_dir(root, name, lambda tmp: _write_records(source, tmp, workers, on_bad))
    cache = RecordCache(path)
    if cache.bad and on_bad == "stop":  # built earlier with on_bad=skip
        raise DataError(f"{cache.bad[0].reason} Or set data.on_bad=skip to leave such files out.")
    return cache, reused
