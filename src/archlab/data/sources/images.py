"""Readers for the image data users bring: class folders of PNG/JPEG files, MNIST-format IDX
files and CIFAR-10 (binary or python version). Every reader returns in-memory uint8 arrays laid
out (N, C, H, W) so the image data module can treat all sources alike.

The python version of CIFAR-10 is a pickle, and unpickling runs code named by the file; it is
therefore read with an unpickler that only resolves the few numpy names those files contain.
"""

from __future__ import annotations

import gzip
import importlib
import io
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from archlab.errors import ConfigError, DataError

__all__ = [
    "CIFAR10_CLASSES",
    "ImageFolderSource",
    "list_image_folder",
    "load_cifar10",
    "load_image_corpus",
    "load_image_folder",
    "load_mnist",
    "read_image",
]

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_MODES = {1: "L", 3: "RGB"}


# ---------------------------------------------------------------- class folders
def _image_files(folder: Path) -> list[Path]:
    """Image files in one class folder, sorted by name so the order is the same on every OS."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def read_image(path: Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """Decode one image fully (so truncated files fail here, naming the file) as (C, H, W)."""
    try:
        with Image.open(path) as img:
            img.load()
            img = img.convert(mode)
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        # UnidentifiedImageError is an OSError; listed for readers of this except clause.
        kind = "not a readable image" if isinstance(err, UnidentifiedImageError) else str(err)
        raise DataError(
            f"{path}: cannot read this image ({kind}). Delete or replace the file."
        ) from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _image_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    if len(size) != 2 or not all(
        isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in size
    ):
        raise ConfigError(f"data.image_size={list(size)} must be two positive integers [H, W].")
    return int(size[0]), int(size[1])


def _stack_same_size(images: list[tuple[Path, np.ndarray]]) -> np.ndarray:
    first_path, first = images[0]
    for path, array in images:
        if array.shape != first.shape:
            raise DataError(
                f"{path} is {array.shape[1]}x{array.shape[2]} (HxW) but {first_path} is "
                f"{first.shape[1]}x{first.shape[2]}; images differ in size. Set "
                "data.image_size=[H,W] to resize them all."
            )
    return np.stack([array for _, array in images])


def load_image_corpus(
    root: Path, channels: int, size: tuple[int, int] | None, limit: int | None = None
) -> np.ndarray:
    """Images without labels: every .png/.jpg/.jpeg under `root` (flat or in sub-folders,
    whose names are ignored), sorted by path, at most `limit` of them, as uint8 (N, C, H, W)."""
    root = Path(root)
    if channels not in _MODES:
        raise ConfigError(f"data.channels={channels} is not supported for images; use 1 or 3.")
    size = _image_size(size)
    if not root.is_dir():
        raise DataError(f"{root}: expected a folder of images (any layout). Check data.path.")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise DataError(f"{root}: no .png, .jpg or .jpeg images in this folder or below it.")
    mode = _MODES[channels]
    return _stack_same_size([(p, read_image(p, mode, size)) for p in files[:limit]])


def list_image_folder(root: Path, channels: int) -> tuple[list[Path], list[str]]:
    """The image files under `root/<class>/` in sorted order, and their class names; no decoding."""
    root = Path(root)
    if channels not in _MODES:
        raise ConfigError(
            f"data.channels={channels} is not supported for image folders; use 1 or 3."
        )
    if not root.exists():
        raise DataError(f"{root}: image folder not found. Check data.path in your config.")
    if not root.is_dir():
        raise DataError(
            f"{root}: expected a folder of class sub-folders (root/<class>/<image>.png), "
            "but this is a file. Point data.path at the folder."
        )
    layout = "Expected one sub-folder per class holding the images: root/<class>/<image>.png."
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class sub-folders found. {layout}")
    paths: list[Path] = []
    labels: list[str] = []
    for folder in classes:
        files = _image_files(folder)
        paths += files
        labels += [folder.name] * len(files)
    if not paths:
        raise DataError(f"{root}: no .png, .jpg or .jpeg images in the class sub-folders. {layout}")
    return paths, labels


def load_image_folder(
    root: Path,
    channels: int,
    size: tuple[int, int] | None,
    skipped: list[tuple[str, str]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read `root/<class>/<image>.png|jpg|jpeg` into (images uint8 (N, C, H, W), class names).

    The class of an image is the name of its folder, so users label data by sorting files into
    folders. Files are taken in sorted order for reproducible splits; other suffixes and hidden
    files (e.g. macOS `._x.png`) are skipped. `channels` is 1 (grayscale) or 3 (RGB); `size`
    (height, width) resizes bilinearly, and without it all images must already share one size.
    An unreadable image stops with a DataError, unless `skipped` is a list: then it is left
    out and (path, reason) appended there.
    """
    size = _image_size(size)
    paths, names = list_image_folder(root, channels)
    mode = _MODES[channels]
    images: list[np.ndarray] = []
    labels: list[str] = []
    first: tuple[Path, tuple[int, int]] | None = None
    for path, label in zip(paths, names, strict=True):
        try:
            array = read_image(path, mode, size)
        except DataError as err:
            if skipped is None:
                raise
            skipped.append((str(path), str(err)))
            continue
        shape = (array.shape[1], array.shape[2])
        if first is None:
            first = (path, shape)
        elif shape != first[1]:
            raise DataError(
                f"{path} is {shape[0]}x{shape[1]} (HxW) but {first[0]} is "
                f"{first[1][0]}x{first[1][1]}; images differ in size. Set "
                "data.image_size=[H,W] to resize them all."
            )
        images.append(array)
        labels.append(label)
    if not images:
        raise DataError(f"{root}: none of the {len(paths)} images could be read.")
    return np.stack(images), np.array(labels, dtype=str)


@dataclass(frozen=True)
class ImageFolderSource:
    """Image files as a `RecordSource` for the on-disk cache: decoded and resized to uint8
    (C, H, W) records. Without `size`, the first readable image sets the shape and an image of
    another size counts as unreadable."""

    items: tuple[str, ...]
    channels: int
    size: tuple[int, int] | None
    shape: tuple[int, ...]
    kind: str = "images"
    dtype: str = "uint8"

    @classmethod
    def of(cls, paths: list[Path], channels: int, size: Any) -> ImageFolderSource:
        size = _image_size(size)
        items = tuple(str(p) for p in paths)
        if size is not None:
            return cls(items, channels, size, (channels, *size))
        for path in paths:
            try:
                first = read_image(path, _MODES[channels], None)
            except DataError:
                continue
            return cls(items, channels, None, first.shape)
        raise DataError(f"{paths[0].parent.parent}: none of the images could be read.")

    def settings(self) -> dict[str, Any]:
        return {"channels": self.channels, "size": self.size, "resize": "PIL bilinear"}

    def decode(self, item: str) -> np.ndarray:
        array = read_image(Path(item), _MODES[self.channels], self.size)
        if array.shape != self.shape:
            raise DataError(
                f"{item} is {array.shape[1]}x{array.shape[2]} (HxW), not "
                f"{self.shape[1]}x{self.shape[2]}; set data.image_size=[H,W] to resize them all."
            )
        return array


# ---------------------------------------------------------------- MNIST (IDX files)
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_IMAGES, _IDX_LABELS = 2051, 2049


def _find_mnist_file(root: Path, name: str) -> Path:
    """Locate `name` (or `name.gz`) in root or the torchvision-style `MNIST/raw` folder."""
    folders = [root, root / "MNIST" / "raw", root / "FashionMNIST" / "raw"]
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise DataError(
        f"{root / name}: MNIST file not found (also looked for {name}.gz and under MNIST/raw/). "
        "Put the four IDX files (optionally gzipped) in the folder named by data.path."
    )


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse an unsigned-byte IDX file, checking its header against the bytes that follow."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: cannot read this file ({err}). Re-download it.") from None
    what = "images" if magic == _IDX_IMAGES else "labels"
    ndim = 3 if magic == _IDX_IMAGES else 1
    if len(data) < 4 or struct.unpack(">I", data[:4])[0] != magic:
        found = struct.unpack(">I", data[:4])[0] if len(data) >= 4 else None
        raise DataError(
            f"{path}: not an IDX {what} file (magic number {found}, expected {magic}). "
            "Check that the file is the MNIST-format file its name says."
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: IDX header is truncated ({len(data)} bytes). Re-download it.")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        raise DataError(
            f"{path}: header says {' x '.join(map(str, dims))} {what}, i.e. {expected} bytes, "
            f"but the file has {len(data)} bytes. The file is truncated or corrupt; re-download it."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load_mnist(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read the MNIST IDX files into {"train"|"test": (images uint8 (N, 1, 28, 28), labels int64)}.

    Files may be gzipped and may sit in `root` or `root/MNIST/raw` (torchvision's layout), so a
    download from any common tool works as is. Fashion-MNIST ships in the same format under the
    same file names, so it loads too. Headers are validated because a truncated download would
    otherwise surface later as a reshape error far from its cause.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: MNIST folder not found. Check data.path in your config.")
    splits = {}
    for split, (image_name, label_name) in _MNIST_FILES.items():
        image_path = _find_mnist_file(root, image_name)
        label_path = _find_mnist_file(root, label_name)
        images = _read_idx(image_path, _IDX_IMAGES)
        labels = _read_idx(label_path, _IDX_LABELS)
        if len(images) != len(labels):
            raise DataError(
                f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} "
                "labels; the two must match. Re-download the pair."
            )
        splits[split] = (images[:, None].copy(), labels.astype(np.int64))
    return splits


# ---------------------------------------------------------------- CIFAR-10
_CIFAR_PIXELS = 3 * 32 * 32
_CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_CIFAR_TEST = ["test_batch"]


def _numpy_attr(modules: tuple[str, ...], name: str) -> Callable[[], Any]:
    """Resolve `name` from the first importable module, so numpy 1.x and 2.x both work."""

    def resolve() -> Any:
        for module in modules:
            try:
                return getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):
                continue
        raise AttributeError(name)

    return resolve


_MULTIARRAY = ("numpy._core.multiarray", "numpy.core.multiarray")
_NUMERIC = ("numpy._core.numeric", "numpy.core.numeric")
# Everything a CIFAR-10 python batch (or a re-pickled copy of one) legitimately refers to.
_ALLOWED_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_attr(_MULTIARRAY, "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_attr(_MULTIARRAY, "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"): _numpy_attr(_NUMERIC, "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): _numpy_attr(_NUMERIC, "_frombuffer"),
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): _numpy_attr(("_codecs",), "encode"),  # bytes under protocol 2
}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except the numpy array plumbing CIFAR-10 uses."""

    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        resolve = _ALLOWED_GLOBALS.get((module, name))
        if resolve is None:
            raise DataError(
                f"refusing to unpickle {module}.{name} from {self.path}: a CIFAR-10 batch only "
                "holds numpy arrays and lists. Replace the file with the official download."
            )
        return resolve()


def _get(batch: dict[Any, Any], key: str) -> Any:
    """A batch key as bytes (the official python-2 pickles) or str (re-pickled copies)."""
    if key.encode() in batch:
        return batch[key.encode()]
    return batch.get(key)


def _read_cifar_pickle(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python-version batch: a pickled dict with b'data' (N x 3072 uint8) and b'labels'."""
    try:
        with path.open("rb") as f:
            batch = _CifarUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as err:  # a malformed pickle can fail in many ways; all mean "bad file"
        raise DataError(
            f"{path}: cannot read this CIFAR-10 python batch ({type(err).__name__}: {err}). "
            "Re-download it."
        ) from None
    data = _get(batch, "data") if isinstance(batch, dict) else None
    labels = _get(batch, "labels") if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataError(
            f"{path}: expected a pickled dict with b'data' (a numpy array) and b'labels'. "
            "This is not a CIFAR-10 python batch; replace it with the official download."
        )
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{path}: b'labels' is not a list of integers. Re-download it.") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _CIFAR_PIXELS:
        raise DataError(
            f"{path}: b'data' is {data.dtype} {data.shape}, expected uint8 (N, {_CIFAR_PIXELS}). "
            "Re-download it."
        )
    if len(labels) != len(data):
        raise DataError(
            f"{path}: {len(data)} images but {len(labels)} labels; the two must match. "
            "Re-download it."
        )
    return data.reshape(-1, 3, 32, 32), labels


def _read_cifar_binary(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One binary-version batch: records of 1 label byte then 3072 pixels (R, G, B planes)."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read this file ({err}). Re-download it.") from None
    record = 1 + _CIFAR_PIXELS
    if not data or len(data) % record:
        raise DataError(
            f"{path}: {len(data)} bytes is not a whole number of {record}-byte CIFAR-10 records "
            "(1 label byte + 3072 pixel bytes). The file is truncated or not CIFAR-10 binary; "
            "re-download it."
        )
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    return rows[:, 1:].reshape(-1, 3, 32, 32).copy(), rows[:, 0].astype(np.int64)


def _cifar_layout(root: Path) -> tuple[Path, str, Callable[[Path], Any]]:
    """Pick the folder and format present: binary or python version, in a sub-folder or root."""
    options = [
        (root / "cifar-10-batches-bin", ".bin", _read_cifar_binary),
        (root, ".bin", _read_cifar_binary),
        (root / "cifar-10-batches-py", "", _read_cifar_pickle),
        (root, "", _read_cifar_pickle),
    ]
    for folder, suffix, reader in options:
        if (folder / f"data_batch_1{suffix}").is_file():
            return folder, suffix, reader
    raise DataError(
        f"{root}: no CIFAR-10 batches found. Expected cifar-10-batches-bin/data_batch_1.bin ... "
        "test_batch.bin (binary version) or cifar-10-batches-py/data_batch_1 ... test_batch "
        "(python version) inside the folder named by data.path."
    )


def load_cifar10(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read CIFAR-10 into {"train"|"test": (images uint8 (N, 3, 32, 32), labels int64)}.

    Accepts the binary version (`cifar-10-batches-bin/*.bin`, or those files directly in root)
    and the python version (`cifar-10-batches-py/`), since users download either. The python
    batches are pickles, read with an allow-list unpickler so a tampered file cannot run code.
    Label i names class `CIFAR10_CLASSES[i]`.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: CIFAR-10 folder not found. Check data.path in your config.")
    folder, suffix, reader = _cifar_layout(root)
    splits = {}
    for split, names in (("train", _CIFAR_TRAIN), ("test", _CIFAR_TEST)):
        parts = []
        for name in names:
            path = folder / f"{name}{suffix}"
            if not path.is_file():
                raise DataError(
                    f"{path}: CIFAR-10 batch missing; the download has data_batch_1 to "
                    "data_batch_5 and test_batch. Re-download or restore it."
                )
            parts.append(reader(path))
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        bad = (labels < 0) | (labels >= len(CIFAR10_CLASSES))
        if bad.any():
            raise DataError(
                f"{folder}: label {int(labels[bad][0])} in the {split} batches is outside 0-9. "
                "These files are not CIFAR-10 (CIFAR-100 is not supported by this reader)."
            )
        splits[split] = (images, labels)
    return splits
