"""Translating new sentences from a translation run's directory: `archlab-predict` (text, CSV,
JSONL in; table, CSV, JSONL out) and `archlab-generate --prompt` give what the translate task's
own search gives (greedy, or beam search), the same every time; a hostile checkpoint is
refused on this path too, and export says it does not apply."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from omegaconf import OmegaConf

from archlab.cli import export as export_cli
from archlab.cli import generate as generate_cli
from archlab.cli import predict as predict_cli
from archlab.config.validate import validate
from archlab.data import build_datamodule
from archlab.tasks.build import build_task

PAIRS = [("cat", "chat"), ("dog", "chien"), ("bird", "oiseau"), ("fish", "poisson"),
         ("horse", "cheval"), ("the cat", "le chat"), ("the dog", "le chien")]  # fmt: skip
TRAIN = ["experiment=seed_transformer", "data.source=tsv", "model.d_model=16", "model.ff_dim=32",
         "model.num_layers=1", "data.batch_size=32", "task.optimizer.lr=0.01",
         "task.scheduler.warmup_steps=10", "trainer.check_val_every_n_epoch=10",
         "trainer.num_sanity_val_steps=0", "test_after_fit=false", "logger=none",
         "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]  # fmt: skip
SOURCES = ["cat", "the dog", "fish", "horse", "the bird, at last"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny translator trained by `archlab-train` on a few word pairs (10 short epochs)."""
    root = tmp_path_factory.mktemp("translate")
    pairs = root / "pairs.tsv"
    pairs.write_text("".join(f"{a}\t{b}\n" for a, b in PAIRS) * 30)
    result = run_cli("archlab.train", *TRAIN, f"data.path={pairs}", f"hydra.run.dir={root / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "run"


def _task_translations(run: Path, sources: list[str], beam_size: int = 1) -> list[str]:
    """What the translate task itself outputs for `sources` (as in its validation), built by
    the training code from the checkpoint."""
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["task"]["beam_size"] = beam_size
    cfg = validate(OmegaConf.create(checkpoint["hyper_parameters"]))
    data = build_datamodule(cfg.data)
    data.load_state_dict(checkpoint["PairsDataModule"])
    task = build_task(cfg, data, {})
    task.load_state_dict(checkpoint["state_dict"])
    task.eval()
    return [data.decode_target(ids) for ids in task(data.encode_sources(sources)).tolist()]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_predict_translates_each_line_as_the_task_does_every_time(run, tmp_path, capsys) -> None:
    long = "the " * 80 + "cat"
    lines = [*SOURCES[:2], "", *SOURCES[2:], long]
    sources = tmp_path / "sources.txt"
    sources.write_text("\n".join(lines) + "\n")
    outputs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for output in outputs:
        predict_cli.main([str(run), str(sources), "--output", str(output)])
    assert outputs[0].read_text() == outputs[1].read_text()
    err = capsys.readouterr().err
    assert "2 input(s) truncated to the model's 7 source tokens" in err
    assert "1 of 7 input(s) refused" in err
    records = _jsonl(outputs[0])
    assert [r["id"] for r in records] == [f"{sources}:{n}" for n in range(1, 8)]
    assert records[2] == {"id": f"{sources}:3", "error": "empty text"}
    kept = [r for r in records if "error" not in r]
    assert [r["source"] for r in kept] == [*SOURCES, long]
    expected = _task_translations(run, [*SOURCES, long])
    assert [r["translation"] for r in kept] == expected
    assert (
        len(set(expected)) > 2
    )  # translations depend on the source: the comparison means something
    # CSV in (--field), CSV and the terminal table out.
    table = tmp_path / "sources.csv"
    table.write_text("id,fr\n" + "".join(f'{i},"{s}"\n' for i, s in enumerate(SOURCES)))
    written = tmp_path / "out.csv"
    predict_cli.main([str(run), str(table), "--field", "fr", "--output", str(written)])
    rows = written.read_text().splitlines()
    assert rows[0] == "id,source,translation,error" and len(rows) == 1 + len(SOURCES)
    assert rows[1].startswith(f"{table}:2,cat,")
    predict_cli.main([str(run), str(sources)])
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["id", "source", "translation"] and "refused: empty text" in out[3]


def test_beam_search_and_generate_give_the_tasks_translations(run, tmp_path, capsys) -> None:
    sources = tmp_path / "sources.txt"
    sources.write_text("\n".join(SOURCES) + "\n")
    output = tmp_path / "beam.jsonl"
    predict_cli.main([str(run), str(sources), "--beam-size", "3", "--output", str(output)])
    beam = [r["translation"] for r in _jsonl(output)]
    assert beam == _task_translations(run, SOURCES, beam_size=3)
    generate_cli.main([str(run), "--prompt", SOURCES[0], "--jsonl"])
    record = json.loads(capsys.readouterr().out)
    assert record["prompt"] == SOURCES[0]
    assert record["text"] == _task_translations(run, SOURCES[:1])[0]
    assert record["stopped"] in ("end_of_text", "max_length")
    with pytest.raises(SystemExit) as stop:
        generate_cli.main([str(run), "--prompt", SOURCES[0], "--temperature", "0.7"])
    assert stop.value.code == 2
    assert "--temperature: a task=translate run decodes with greedy or beam search" in (
        capsys.readouterr().err
    )


def test_export_of_a_translator_says_what_to_use_instead(run, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        export_cli.main([str(run), "--format", "torch-export"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Translate with archlab-predict or archlab-generate" in err
    assert not (run / "export").exists()


class _RunsCode:
    """Unpickling this calls os.system: what a hostile checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_hostile_translation_checkpoint_is_refused(run, tmp_path, capsys) -> None:
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    marker = tmp_path / "pwned"
    checkpoint["PairsDataModule"]["payload"] = _RunsCode(marker)
    crafted = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, crafted)
    sources = tmp_path / "sources.txt"
    sources.write_text(SOURCES[0] + "\n")
    for main, args in ((predict_cli.main, [str(sources)]),
                       (generate_cli.main, ["--prompt", SOURCES[0]])):  # fmt: skip
        with pytest.raises(SystemExit) as stop:
            main([str(crafted), *args])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert "refused for safety" in err and err.count("\n") == 1
    assert not marker.exists()
