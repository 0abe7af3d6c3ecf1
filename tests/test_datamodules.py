"""Data modules: seeded splits, train-only statistics, tensor batches, every user format."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.data import build_datamodule
from archlab.data.batches import TensorBatches
from archlab.errors import ConfigError, DataError
from archlab.models import ImageSpec, SequenceSpec, TextSpec


def _datamodule(*overrides: str):
    cfg = validate(compose_config("train", list(overrides)))
    dm = build_datamodule(cfg.data)
    dm.setup("fit")
    return dm


def test_digits_splits_are_disjoint_seeded_and_sized() -> None:
    dm = _datamodule("data=image")
    sizes = {s: len(dm.tensors[s][1]) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == pytest.approx(0.2 * 1797, abs=2)
    assert sizes["val"] == pytest.approx(0.1 * 1797, abs=2)
    flat = {s: {tuple(x.flatten().tolist()) for x in dm.tensors[s][0]} for s in sizes}
    assert len(flat["train"] & flat["test"]) < 5  # digits has a few exact duplicates
    again = _datamodule("data=image")
    assert torch.equal(again.tensors["test"][1], dm.tensors["test"][1])
    other = _datamodule("data=image", "data.split_seed=1")
    assert not torch.equal(other.tensors["test"][1], dm.tensors["test"][1])


def test_normalisation_statistics_come_from_the_train_split_only(tmp_path: Path) -> None:
    """Val and test are scaled with the train split's mean and std, never their own: here the
    three splits are drawn around different centres, so any other statistics show."""
    rng = np.random.default_rng(0)
    raw = {}
    for split, centre, n in (("train", 0.0, 40), ("val", 20.0, 10), ("test", 50.0, 10)):
        raw[split] = rng.normal(centre, 3.0, size=(n, 6))
        rows = "\n".join(
            ",".join(repr(float(v)) for v in row) + f",{i % 2}" for i, row in enumerate(raw[split])
        )
        (tmp_path / f"{split}.csv").write_text("t0,t1,t2,t3,t4,t5,label\n" + rows + "\n")
    dm = _datamodule("data=sequence", "data.source=csv", f"data.path={tmp_path}")
    mean, std = raw["train"].mean(), raw["train"].std()
    for split in ("train", "val", "test"):
        expected = torch.tensor((raw[split] - mean) / std, dtype=torch.float32)[..., None]
        assert torch.allclose(dm.tensors[split][0], expected, atol=1e-5), split


def test_train_batches_are_sliced_whole_and_cover_each_example_once(monkeypatch) -> None:
    dm = _datamodule("data=sequence", "data.batch_size=100")
    calls = []
    original = TensorBatches.__getitems__
    monkeypatch.setattr(
        TensorBatches, "__getitems__", lambda self, i: calls.append(len(i)) or original(self, i)
    )
    batches = list(dm.train_dataloader())
    n = len(dm.tensors["train"][1])
    assert calls == [len(b[1]) for b in batches] and len(calls) == -(-n // 100)
    assert all(isinstance(x, torch.Tensor) and x.shape[1:] == (8, 8) for x, _ in batches)
    seen = torch.cat([x for x, _ in batches]).flatten(1)
    assert len({tuple(r.tolist()) for r in seen}) == len(
        {tuple(r.tolist()) for r in dm.tensors["train"][0].flatten(1)}
    )


def test_state_dict_restores_transforms_without_refitting() -> None:
    dm = _datamodule("data=text", "data.tokenizer=char", "data.packages=[json,http]")
    restored = build_datamodule(dm.cfg)
    restored.load_state_dict(dm.state_dict())
    restored.setup("test")
    assert restored.fitted["tokenizer"] == dm.fitted["tokenizer"]
    assert torch.equal(restored.tensors["test"][0], dm.tensors["test"][0])
    assert restored.spec == dm.spec


def test_specs_describe_each_modality() -> None:
    assert _datamodule("data=image").spec == ImageSpec(1, 8, 8)
    assert _datamodule("data=sequence", "data.layout=pixels").spec == SequenceSpec(64, 1)
    spec = _datamodule("data=text", "data.max_length=32", "data.packages=[json,http]").spec
    assert isinstance(spec, TextSpec) and spec.length <= 32 and spec.vocab_size > 100


# ---------------------------------------------------------------- user formats
def _png(path: Path, value: int, size: int = 6) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8)).save(path)


def test_image_folder_with_train_and_test_subfolders(tmp_path: Path) -> None:
    for split, count in (("train", 10), ("test", 4)):
        for label, value in (("dark", 20), ("light", 230)):
            for i in range(count):
                _png(tmp_path / split / label / f"{i}.png", value + i)
    dm = _datamodule("data.source=folder", f"data.path={tmp_path}", "data.val_fraction=0.2")
    assert dm.classes == ["dark", "light"]
    assert len(dm.tensors["test"][1]) == 8
    assert dm.spec == ImageSpec(1, 6, 6)


def test_mnist_and_cifar10_files(tmp_path: Path) -> None:
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    for prefix, n in (("train", 30), ("t10k", 6)):
        pixels = np.random.default_rng(0).integers(0, 255, (n, 28, 28), dtype=np.uint8)
        (mnist / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 2051, n, 28, 28) + pixels.tobytes()
        )
        labels = np.arange(n, dtype=np.uint8) % 3
        (mnist / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 2049, n) + labels.tobytes()
        )
    dm = _datamodule("data.source=mnist", f"data.path={mnist}")
    assert dm.spec == ImageSpec(1, 28, 28) and len(dm.tensors["test"][1]) == 6

    cifar = tmp_path / "cifar-10-batches-bin"
    cifar.mkdir()
    records = lambda n: b"".join(bytes([i % 10]) + bytes(3072) for i in range(n))  # noqa: E731
    for i in range(1, 6):
        (cifar / f"data_batch_{i}.bin").write_bytes(records(10))
    (cifar / "test_batch.bin").write_bytes(records(10))
    dm = _datamodule("data.source=cifar10", f"data.path={tmp_path}")
    assert dm.spec == ImageSpec(3, 32, 32) and dm.num_classes == 10


def test_series_csv_and_ucr_files(tmp_path: Path) -> None:
    rows = ["label,a,b,c,d"] + [f"{i % 2},{i},{i + 1},{i + 2},{i + 3}" for i in range(40)]
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    dm = _datamodule("data=sequence", "data.source=csv", f"data.path={tmp_path / 's.csv'}")
    assert dm.spec == SequenceSpec(4, 1) and dm.num_classes == 2
    dm = _datamodule(
        "data=sequence", "data.source=csv", f"data.path={tmp_path / 's.csv'}", "data.num_features=2"
    )
    assert dm.spec == SequenceSpec(2, 2)
    ucr = tmp_path / "Toy"
    ucr.mkdir()
    for split, n in (("TRAIN", 30), ("TEST", 10)):
        lines = [
            f"{-1 if i % 2 else 1}\t" + "\t".join(str(i * j) for j in range(5)) for i in range(n)
        ]
        (ucr / f"Toy_{split}.tsv").write_text("\n".join(lines) + "\n")
    dm = _datamodule("data=sequence", "data.source=ucr", f"data.path={ucr}")
    assert dm.classes == ["-1", "1"] and len(dm.tensors["test"][1]) == 10


def test_text_csv_jsonl_and_folder_files(tmp_path: Path) -> None:
    words = {"pos": "good great fine", "neg": "bad awful poor"}
    examples = [(f"{words[label]} number {i}", label) for i in range(20) for label in words]
    (tmp_path / "t.jsonl").write_text(
        "\n".join(json.dumps({"body": t, "y": label}) for t, label in examples)
    )
    dm = _datamodule(
        "data=text",
        "data.source=jsonl",
        f"data.path={tmp_path / 't.jsonl'}",
        "data.text_field=body",
        "data.label_field=y",
        "data.vocab_size=300",
    )
    assert dm.classes == ["neg", "pos"]
    (tmp_path / "t.csv").write_text("text,label\n" + "\n".join(f"{t},{y}" for t, y in examples))
    dm = _datamodule(
        "data=text", "data.source=csv", f"data.path={tmp_path / 't.csv'}", "data.tokenizer=char"
    )
    assert dm.num_classes == 2
    for i, (text, label) in enumerate(examples):
        (tmp_path / "folder" / label).mkdir(parents=True, exist_ok=True)
        (tmp_path / "folder" / label / f"{i}.txt").write_text(text)
    dm = _datamodule("data=text", "data.source=folder", f"data.path={tmp_path / 'folder'}")
    assert dm.num_classes == 2


def test_tokenizer_never_sees_the_test_split(tmp_path: Path) -> None:
    train = [{"text": "abc abc", "label": str(i % 2)} for i in range(20)]
    test = [{"text": "xyz", "label": str(i % 2)} for i in range(4)]
    for name, rows in (("train", train), ("test", test)):
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    dm = _datamodule(
        "data=text", "data.source=jsonl", f"data.path={tmp_path}", "data.tokenizer=char"
    )
    unk = dm.tokenizer.unk_id
    assert (dm.tensors["test"][0][:, :3] == unk).all()


def test_text_length_fits_the_train_texts_unless_set(tmp_path: Path) -> None:
    """data.max_length null: the shortest multiple of 32 holding 95% of the train texts whole
    (38 texts of 40 characters and 2 of 300: 64), in memory and streamed alike."""
    rows = [{"text": "ab" * 20, "label": str(i % 2)} for i in range(38)]
    rows += [{"text": "cd" * 150, "label": str(i)} for i in range(2)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    for split in ("val", "test"):
        (tmp_path / f"{split}.jsonl").write_text(json.dumps(rows[-1]))
    text = ("data=text", "data.source=jsonl", f"data.path={tmp_path}", "data.tokenizer=char")
    dm = _datamodule(*text)
    assert dm.spec.length == 64 and dm.tensors["train"][0].shape == (40, 64)
    streamed = _datamodule(*text, "data.in_memory=false", f"data.cache_dir={tmp_path / 'c'}")
    assert streamed.spec.length == 64
    assert _datamodule(*text, "data.max_length=1000").spec.length == 300  # the user's wins
    assert _datamodule(*text, "data.length_coverage=1.0").spec.length == 300
    assert _datamodule(*text, "data.max_auto_length=48").spec.length == 48


def test_user_source_without_a_path_names_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"data\.path"):
        _datamodule("data.source=folder")


def test_missing_path_and_unseen_test_label_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does-not-exist"):
        _datamodule("data.source=folder", f"data.path={tmp_path / 'does-not-exist'}")
    for split, labels in (("train", "ab"), ("test", "c")):
        for label in labels:
            for i in range(3):
                _png(tmp_path / "imgs" / split / label / f"{i}.png", 10 * i)
    with pytest.raises(DataError, match="'c'"):
        _datamodule("data.source=folder", f"data.path={tmp_path / 'imgs'}")


def test_an_empty_split_is_named_with_the_setting_to_change() -> None:
    with pytest.raises(DataError, match=r"val split is empty.*data\.val_fraction"):
        _datamodule("data=image", "data.val_fraction=0")
