"""Image readers: class folders, MNIST IDX files and CIFAR-10, written small and read back."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from archlab.data.sources.images import (
    CIFAR10_CLASSES,
    load_cifar10,
    load_image_folder,
    load_mnist,
)
from archlab.errors import DataError


# ---------------------------------------------------------------- class folders
def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _rgb(value: tuple[int, int, int], h: int = 4, w: int = 6) -> np.ndarray:
    return np.broadcast_to(np.array(value, np.uint8), (h, w, 3)).copy()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    _save(root / "cat" / "b.png", _rgb((255, 0, 0)))
    _save(root / "cat" / "a.PNG", _rgb((0, 255, 0)))
    _save(root / "dog" / "x.jpeg", _rgb((0, 0, 255)))
    _save(root / "dog" / "g.png", np.full((4, 6), 77, np.uint8))  # grayscale source
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "dog" / "._g.png").write_bytes(b"macos resource fork")  # hidden: skipped
    return root


def test_folder_rgb_reads_sorted_with_labels(folder: Path) -> None:
    images, labels = load_image_folder(folder, 3, None)
    assert images.dtype == np.uint8
    assert images.shape == (4, 3, 4, 6)
    assert labels.tolist() == ["cat", "cat", "dog", "dog"]
    assert labels.dtype.kind == "U"
    # cat/a.PNG (green) sorts before cat/b.png (red); dog/g.png before dog/x.jpeg
    assert (images[0] == np.array([0, 255, 0])[:, None, None]).all()
    assert (images[1] == np.array([255, 0, 0])[:, None, None]).all()
    assert (images[2] == 77).all()  # grayscale expanded to three equal planes
    blue = images[3].reshape(3, -1).mean(axis=1)  # JPEG is lossy: compare approximately
    assert blue[2] > 230 and blue[0] < 25 and blue[1] < 25


def test_folder_grayscale_and_resize(folder: Path) -> None:
    images, labels = load_image_folder(folder, 1, (8, 3))
    assert images.shape == (4, 1, 8, 3)
    assert len(labels) == 4
    assert (images[2] == 77).all()  # uniform image stays uniform after bilinear resize
    expected_red = round(0.299 * 255)  # PIL's ITU-R 601-2 luma for pure red
    assert abs(int(images[1, 0, 4, 1]) - expected_red) <= 1


def test_folder_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    _save(root / "a" / "1.png", np.zeros((4, 4), np.uint8))
    _save(root / "b" / "2.png", np.zeros((5, 4), np.uint8))
    with pytest.raises(DataError) as err:
        load_image_folder(root, 1, None)
    message = str(err.value)
    assert "2.png" in message and "5x4" in message and "4x4" in message
    assert "data.image_size" in message
    images, _ = load_image_folder(root, 1, (4, 4))
    assert images.shape == (2, 1, 4, 4)


def test_folder_corrupt_image_is_named(folder: Path) -> None:
    bad = folder / "dog" / "broken.png"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match=r"broken\.png") as err:
        load_image_folder(folder, 3, None)
    assert "replace" in str(err.value)


def test_folder_truncated_png_is_named(folder: Path) -> None:
    good = (folder / "cat" / "b.png").read_bytes()
    (folder / "cat" / "c.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"c\.png"):
        load_image_folder(folder, 3, None)


def test_folder_missing_root_and_bad_layouts(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.path") as err:
        load_image_folder(tmp_path / "nowhere", 1, None)
    assert "nowhere" in str(err.value)

    flat = tmp_path / "flat"
    _save(flat / "img.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(DataError, match=r"root/<class>/<image>\.png"):
        load_image_folder(flat, 1, None)

    empty = tmp_path / "empty"
    (empty / "cls").mkdir(parents=True)
    (empty / "cls" / "readme.md").write_text("x")
    with pytest.raises(DataError, match=r"root/<class>/<image>\.png"):
        load_image_folder(empty, 1, None)


# ---------------------------------------------------------------- MNIST
def _idx_images(images: np.ndarray) -> bytes:
    n, h, w = images.shape
    return struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def _mnist_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    train = (np.arange(5 * 28 * 28) % 251).astype(np.uint8).reshape(5, 28, 28)
    test = (np.arange(3 * 28 * 28) % 13 * 19).astype(np.uint8).reshape(3, 28, 28)
    return {"train": (train, np.array([5, 0, 4, 1, 9])), "test": (test, np.array([7, 2, 1]))}


def _write_mnist(folder: Path, gz: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = _mnist_arrays()
    for prefix, split in (("train", "train"), ("t10k", "test")):
        images, labels = arrays[split]
        for name, data in (
            (f"{prefix}-images-idx3-ubyte", _idx_images(images)),
            (f"{prefix}-labels-idx1-ubyte", _idx_labels(labels)),
        ):
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_round_trip(tmp_path: Path, gz: bool) -> None:
    arrays = _write_mnist(tmp_path, gz)
    splits = load_mnist(tmp_path)
    assert set(splits) == {"train", "test"}
    for split, (images, labels) in arrays.items():
        got_images, got_labels = splits[split]
        assert got_images.dtype == np.uint8 and got_images.shape == (len(labels), 1, 28, 28)
        assert got_labels.dtype == np.int64
        np.testing.assert_array_equal(got_images[:, 0], images)
        np.testing.assert_array_equal(got_labels, labels)


def test_mnist_torchvision_layout(tmp_path: Path) -> None:
    arrays = _write_mnist(tmp_path / "MNIST" / "raw", gz=True)
    splits = load_mnist(tmp_path)
    np.testing.assert_array_equal(splits["test"][1], arrays["test"][1])


def test_mnist_truncated_file_is_named(tmp_path: Path) -> None:
    _write_mnist(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte") as err:
        load_mnist(tmp_path)
    assert "truncated" in str(err.value)


def test_mnist_wrong_magic_and_count_mismatch(tmp_path: Path) -> None:
    _write_mnist(tmp_path, gz=False)
    labels = tmp_path / "train-labels-idx1-ubyte"
    images = tmp_path / "train-images-idx3-ubyte"
    labels.write_bytes(images.read_bytes())  # an images file where labels belong
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.*2051.*2049"):
        load_mnist(tmp_path)
    labels.write_bytes(_idx_labels(np.array([1, 2, 3, 4])))  # 4 labels for 5 images
    with pytest.raises(DataError, match=r"5 images .* 4 labels"):
        load_mnist(tmp_path)


def test_mnist_missing_file_is_named(tmp_path: Path) -> None:
    _write_mnist(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(DataError, match=r"data\.path"):
        load_mnist(tmp_path / "nowhere")


# ---------------------------------------------------------------- CIFAR-10
CIFAR_TRAIN = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"]


def _cifar_batches() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Two records per batch; pixel bytes depend on batch, record and position."""
    rng = np.random.default_rng(0)
    return {
        name: (
            rng.integers(0, 256, (2, 3072), dtype=np.uint8),
            rng.integers(0, 10, 2).astype(np.int64),
        )
        for name in [*CIFAR_TRAIN, "test_batch"]
    }


def _write_cifar_bin(folder: Path, batches: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, labels) in batches.items():
        records = np.concatenate([labels.astype(np.uint8)[:, None], data], axis=1)
        (folder / f"{name}.bin").write_bytes(records.tobytes())


def _write_cifar_py(
    folder: Path, batches: dict[str, tuple[np.ndarray, np.ndarray]], protocol: int
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, labels) in batches.items():
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels.tolist(),
            b"data": data,
            b"filenames": [f"img{i}.png".encode() for i in range(len(labels))],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))


def _check_cifar(splits: dict, batches: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    assert set(splits) == {"train", "test"}
    train_images, train_labels = splits["train"]
    assert train_images.dtype == np.uint8 and train_images.shape == (10, 3, 32, 32)
    assert train_labels.dtype == np.int64
    np.testing.assert_array_equal(
        train_images.reshape(10, 3072), np.concatenate([batches[n][0] for n in CIFAR_TRAIN])
    )
    np.testing.assert_array_equal(
        train_labels, np.concatenate([batches[n][1] for n in CIFAR_TRAIN])
    )
    test_images, test_labels = splits["test"]
    data, labels = batches["test_batch"]
    np.testing.assert_array_equal(test_labels, labels)
    # Record layout: bytes 0-1023 red plane, 1024-2047 green, 2048-3071 blue, each row-major.
    assert test_images[1, 0, 0, 0] == data[1, 0]
    assert test_images[1, 0, 0, 31] == data[1, 31]
    assert test_images[1, 0, 1, 0] == data[1, 32]
    assert test_images[1, 1, 0, 0] == data[1, 1024]
    assert test_images[1, 2, 31, 31] == data[1, 3071]


def test_cifar_classes() -> None:
    assert len(CIFAR10_CLASSES) == 10
    assert CIFAR10_CLASSES[0] == "airplane" and CIFAR10_CLASSES[9] == "truck"


@pytest.mark.parametrize("subfolder", ["cifar-10-batches-bin", ""])
def test_cifar_binary(tmp_path: Path, subfolder: str) -> None:
    batches = _cifar_batches()
    _write_cifar_bin(tmp_path / subfolder, batches)
    _check_cifar(load_cifar10(tmp_path), batches)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_python_pickles(tmp_path: Path, protocol: int) -> None:
    batches = _cifar_batches()
    _write_cifar_py(tmp_path / "cifar-10-batches-py", batches, protocol)
    _check_cifar(load_cifar10(tmp_path), batches)


def test_cifar_python_legacy_numpy_module_name(tmp_path: Path) -> None:
    """The official files were pickled by numpy 1.x and name `numpy.core.multiarray`."""
    batches = _cifar_batches()
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar_py(folder, batches, protocol=2)
    for path in folder.iterdir():
        raw = path.read_bytes()
        assert b"numpy._core.multiarray\n" in raw
        path.write_bytes(raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    _check_cifar(load_cifar10(tmp_path), batches)


def test_cifar_binary_truncated_is_named(tmp_path: Path) -> None:
    _write_cifar_bin(tmp_path / "cifar-10-batches-bin", _cifar_batches())
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match=r"data_batch_3\.bin.*3073"):
        load_cifar10(tmp_path)


def test_cifar_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cifar-10-batches-bin"):
        load_cifar10(tmp_path)
    _write_cifar_bin(tmp_path / "cifar-10-batches-bin", _cifar_batches())
    (tmp_path / "cifar-10-batches-bin" / "test_batch.bin").unlink()
    with pytest.raises(DataError, match=r"test_batch\.bin"):
        load_cifar10(tmp_path)


class _Exploit:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_cifar_malicious_pickle_is_refused(tmp_path: Path) -> None:
    batches = _cifar_batches()
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar_py(folder, batches, protocol=4)
    marker = tmp_path / "pwned"
    payload = {b"data": _Exploit(f"touch {marker}"), b"labels": [0]}
    (folder / "data_batch_2").write_bytes(pickle.dumps(payload))
    with pytest.raises(DataError, match=r"refusing to unpickle .*system.*data_batch_2"):
        load_cifar10(tmp_path)
    assert not marker.exists()


def test_cifar_pickle_without_arrays_is_refused(tmp_path: Path) -> None:
    batches = _cifar_batches()
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar_py(folder, batches, protocol=4)
    (folder / "test_batch").write_bytes(pickle.dumps({b"labels": [1]}))
    with pytest.raises(DataError, match="test_batch"):
        load_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="test_batch"):
        load_cifar10(tmp_path)
