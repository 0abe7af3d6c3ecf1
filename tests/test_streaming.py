"""Streaming from disk: an image folder decoded once into an on-disk cache and read back by
loader workers gives the same splits, statistics and batches as the in-memory path; the
cache is reused, rebuilt when a file or setting changes, never trusted half-built; bad files
stop or are skipped and listed; a killed streamed run resumes exactly; DDP agrees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image
from streamed_resume import assert_resumes_exactly, streamed_datamodule

from archlab.data.batches import TensorBatches, batch_loader, tensor_loader
from archlab.data.cache import build_cache
from archlab.data.sources.images import ImageFolderSource, list_image_folder
from archlab.data.streaming import StreamedInputs
from archlab.errors import DataError

QUIET = ("trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")


def make_folder(root: Path, per_class: int = 30, size: int = 8, seed: int = 0) -> Path:
    """Three classes of small grayscale PNGs whose brightness pattern tells the class."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(("a", "b", "c")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 100, (size, size)) + 70 * c
            pixels[:, c * 2 : c * 2 + 2] = 255
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("images") / "data")


def _module(folder: Path, cache: Path, *overrides: str):
    return streamed_datamodule(folder, cache, "data.source=folder", *overrides)


def _all(dm, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = dm.datasets[split]
    return data.__getitems__(list(range(len(data))))


def test_streamed_splits_statistics_and_batches_match_in_memory(folder, tmp_path, capsys):
    memory = _module(folder, tmp_path, "data.in_memory=true")
    assert "held in memory" in capsys.readouterr().err
    streamed = _module(folder, tmp_path, "data.in_memory=false")
    assert "streamed from an on-disk cache" in capsys.readouterr().err
    assert isinstance(memory.tensors["train"][0], torch.Tensor)
    assert isinstance(streamed.tensors["train"][0], StreamedInputs)  # read on demand
    for split in ("train", "val", "test"):
        x_mem, y_mem = memory.tensors[split]
        x_str, y_str = _all(streamed, split)
        assert torch.equal(y_str, y_mem), split
        torch.testing.assert_close(x_str, x_mem, atol=1e-5, rtol=0)
    torch.testing.assert_close(streamed.fitted["mean"], memory.fitted["mean"])
    torch.testing.assert_close(streamed.fitted["std"], memory.fitted["std"])
    assert streamed.spec == memory.spec
    for loader in ("train_dataloader", "val_dataloader"):
        mine = [b for b in getattr(streamed, loader)()]
        theirs = [b for b in getattr(memory, loader)()]
        assert len(mine) == len(theirs)
        for (xa, ya), (xb, yb) in zip(mine, theirs, strict=True):
            assert torch.equal(ya, yb)
            torch.testing.assert_close(xa, xb, atol=1e-5, rtol=0)


def test_auto_choice_keeps_small_folders_in_memory(folder, tmp_path, capsys):
    dm = _module(folder, tmp_path)
    assert dm.tensors and "within 1 GiB): held in memory" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # no cache written for in-memory data


def _source(folder: Path, size=None) -> ImageFolderSource:
    paths, _ = list_image_folder(folder, 1)
    return ImageFolderSource.of(paths, 1, size)


def test_cache_is_reused_and_rebuilt_when_a_file_or_setting_changes(tmp_path):
    folder = make_folder(tmp_path / "data", per_class=4)
    first, reused = build_cache(_source(folder), tmp_path / "cache", workers=1)
    assert not reused
    again, reused = build_cache(_source(folder), tmp_path / "cache", workers=1)
    assert reused and again.path == first.path
    resized, reused = build_cache(_source(folder, [4, 4]), tmp_path / "cache", workers=1)
    assert not reused and resized.path != first.path and resized.shape == (1, 4, 4)
    changed = folder / "a" / "000.png"
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))  # a new mtime even on a coarse-clock filesystem
    rebuilt, reused = build_cache(_source(folder), tmp_path / "cache", workers=2)
    assert not reused and rebuilt.path not in (first.path, resized.path)
    assert (rebuilt.read(np.array([0]))[0] == 7).all()  # the new pixels, not the old
    assert np.array_equal(rebuilt.read(np.arange(1, 12)), first.read(np.arange(1, 12)))


_KILLED_BUILD = """
import os, signal, sys
from pathlib import Path
from archlab.data.cache import build_cache
from archlab.data.sources.images import ImageFolderSource, list_image_folder
from archlab.data.streaming import StreamedInputs

class DiesMidway(ImageFolderSource):
    def decode(self, item):
        if item.endswith("005.png"):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().decode(item)

paths, _ = list_image_folder(Path(sys.argv[1]), 1)
plain = ImageFolderSource.of(paths, 1, None)
source = DiesMidway(plain.items, 1, None, plain.shape)
build_cache(source, Path(sys.argv[2]), workers=1)
"""


def test_a_build_killed_midway_leaves_no_cache_that_is_trusted(tmp_path):
    folder = make_folder(tmp_path / "data", per_class=8)
    cache = tmp_path / "cache"
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLED_BUILD), str(folder), str(cache)],
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -9, killed.stderr
    leftovers = [p.name for p in cache.iterdir() if not p.name.endswith(".lock")]
    assert leftovers and all(name.startswith(".tmp-") for name in leftovers)
    built, reused = build_cache(_source(folder), cache, workers=1)
    assert not reused  # the half-written directory was not taken for a cache
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) == [
        built.path.name
    ]
    paths, _ = list_image_folder(folder, 1)
    expected = np.stack([np.asarray(Image.open(p))[None] for p in paths])
    assert np.array_equal(built.read(np.arange(len(paths))), expected)


def _corrupt(folder: Path) -> list[Path]:
    bad = [folder / "a" / "zz_truncated.png", folder / "b" / "zz_text.png"]
    good = (folder / "a" / "000.png").read_bytes()
    bad[0].write_bytes(good[: len(good) // 2])
    bad[1].write_text("not an image at all")
    return bad


@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_bad_files_stop_by_default_and_are_skipped_and_listed_on_request(tmp_path, in_memory):
    folder = make_folder(tmp_path / "data", per_class=10)
    bad = _corrupt(folder)
    with pytest.raises(DataError, match=r"zz_truncated\.png: cannot read this image"):
        _module(folder, tmp_path / "cache", f"data.in_memory={in_memory}")
    dm = _module(folder, tmp_path / "cache", f"data.in_memory={in_memory}", "data.on_bad=skip")
    assert sorted(b["path"] for b in dm.bad_inputs) == sorted(map(str, bad))
    assert sum(len(dm.datasets[s]) for s in ("train", "val", "test")) == 30
    if in_memory == "false":  # a warm cache built with skip still refuses with on_bad=stop
        with pytest.raises(DataError, match=r"zz_truncated\.png"):
            _module(folder, tmp_path / "cache", "data.in_memory=false")


@pytest.mark.slow
def test_cli_streams_skips_bad_files_and_records_them(tmp_path):
    folder = make_folder(tmp_path / "data", per_class=20)
    bad = _corrupt(folder)
    run = tmp_path / "run"
    args = ("data.source=folder", f"data.path={folder}", f"data.cache_dir={tmp_path / 'c'}",
            "data.in_memory=false", "data.num_workers=1", "data.on_bad=skip",
            "model.channels=[4]", "model.fc_dims=[8]", "trainer.max_epochs=1",
            "logger=none", f"hydra.run.dir={run}", *QUIET)  # fmt: skip
    result = run_cli("archlab.train", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "streamed from an on-disk cache" in result.stderr
    assert "built in" in result.stderr
    listed = json.loads((run / "bad_inputs.json").read_text())
    assert sorted(b["path"] for b in listed) == sorted(map(str, bad))
    assert all("cannot read this image" in b["reason"] for b in listed)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["bad_inputs"] == 2
    assert sum(map(sum, metrics["confusion_matrix"]["test"])) == 12  # 20% of the 60 good


def test_an_unwritable_cache_dir_is_one_clear_error(tmp_path):
    folder = make_folder(tmp_path / "data", per_class=4)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run_cli(
        "archlab.train", "data.source=folder", f"data.path={folder}", "data.in_memory=false",
        f"data.cache_dir={blocker / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}", *QUIET,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [x for x in result.stderr.splitlines() if x.startswith("archlab-train: error: ")]
    assert len(errors) == 1 and f"data.cache_dir={blocker / 'cache'}" in errors[0]
    assert "Set data.cache_dir=" in errors[0]
    assert not (tmp_path / "run" / "metrics.json").exists()


# ---------------------------------------------------------------- exact resume, streamed
AUGMENT = ("data.augment.flip=true", "data.augment.crop_scale=0.6", "data.augment.rotate=10",
           "data.augment.color=0.2")  # fmt: skip


def test_a_streamed_augmented_run_killed_mid_epoch_resumes_exactly(folder, tmp_path):
    overrides = ("data.source=folder", f"data.path={folder}", "data.batch_size=16",
                 "model.channels=[4]", "model.fc_dims=[8]", "model.dropout=0.2",
                 *AUGMENT)  # fmt: skip
    seen, dm = assert_resumes_exactly(overrides, tmp_path, every=2, crash=3)
    assert len(seen.train) == 2 * -(-len(dm.datasets["train"]) // 16)
    # Augmentation changes training batches only: validation sees the stored inputs.
    raw = dm.datasets["val"].__getitems__(list(range(len(dm.datasets["val"]))))[0]
    assert torch.equal(seen.val[0], raw[: len(seen.val[0])])
    first = dm.datasets["train"].__getitems__(list(range(len(dm.datasets["train"]))))[0]
    rows = {tuple(x.flatten().tolist()) for x in first}
    assert not any(tuple(x.flatten().tolist()) in rows for x in seen.train[0])


# ---------------------------------------------------------------- DDP on streamed data
@pytest.mark.slow
def test_streamed_ddp_counts_each_example_once_and_matches_one_process(folder, tmp_path):
    # Full batches only (3 of 16): DDP pads a short last batch with repeated examples. 18 val
    # and 18 test examples: equal halves per rank (a loss is logged as the mean of rank means).
    common = ("data.source=folder", f"data.path={folder}", f"data.cache_dir={tmp_path / 'c'}",
              "data.in_memory=false", "data.num_workers=1", "model.batch_norm=false",
              "model.dropout=0", "trainer.max_epochs=1", "logger=none", *QUIET,
              "trainer.limit_train_batches=3", "data.val_fraction=0.2")  # fmt: skip
    records = {}
    for name, extra in (
        ("one", ("trainer=cpu", "data.batch_size=16")),
        ("two", ("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                 "data.batch_size=8")),
    ):  # fmt: skip
        run = tmp_path / name
        result = run_cli("archlab.train", *common, *extra, f"hydra.run.dir={run}")
        assert result.returncode == 0, result.stderr[-3000:]
        records[name] = json.loads((run / "metrics.json").read_text())
    for split in ("val", "test"):
        counts = [sum(map(sum, records[r]["confusion_matrix"][split])) for r in records]
        assert counts[0] == counts[1] > 0
    for key, value in records["one"].items():
        if key.startswith(("val/", "test/")):
            assert records["two"][key] == pytest.approx(value, abs=1e-5), key


class CountingBatches(TensorBatches):
    """Counts the examples read, as a slow disk would feel them."""

    reads = 0

    def __getitems__(self, indices):
        type(self).reads += len(indices)
        return super().__getitems__(indices)


def test_a_resumed_epoch_reads_none_of_the_batches_it_skips():
    data = CountingBatches(torch.arange(100))
    whole = [b[0] for b in tensor_loader(data.tensors, 10, shuffle=True, seed=3)]
    loader = batch_loader(data, 10, shuffle=True, seed=3)
    loader.load_state_dict({"epoch": 0, "batches": 4})
    CountingBatches.reads = 0
    rest = [b[0] for b in loader]
    assert CountingBatches.reads == 60
    assert all(torch.equal(a, b) for a, b in zip(rest, whole[4:], strict=True))
    assert loader.state_dict() == {"epoch": 0, "batches": 10}
