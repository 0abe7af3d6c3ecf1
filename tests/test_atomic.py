"""Checkpoints and records are replaced whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archlab.checkpointing.atomic_io import AtomicCheckpointIO
from archlab.records.run_record import write_json_atomic


def test_a_crash_during_a_checkpoint_save_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "step": 1}, path)

    def crash_midway(obj: object, f) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # what a kill or Ctrl-C looks like mid-write

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "step": 2}, path)
    monkeypatch.undo()
    kept = torch.load(path, weights_only=True)
    assert kept["step"] == 1 and torch.equal(kept["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary left


def test_json_records_are_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"test/acc": 0.5})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"test/acc": object()})  # fails while serialising
    assert path.read_text().strip() == '{\n  "test/acc": 0.5\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
