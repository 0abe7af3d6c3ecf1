"""task=translate end to end: one short `archlab-train` run (metrics, example translations,
attention maps in TensorBoard, `archlab-eval`), the user's parallel text, tokenizers fitted on
train only, and an `mlm`-pretrained encoder transferring into a translator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from tensorboard.backend.event_processing import event_accumulator as ea

from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.data import build_datamodule
from archlab.data.tokenizers import fit_tokenizer
from archlab.errors import DataError
from archlab.models.pretrain import build_pretrainer
from archlab.models.seq2seq import build_translator
from archlab.models.spec import TextSpec
from archlab.tasks.transfer import transfer_weights

TINY = [
    "experiment=seed_transformer",
    "data.num_examples=400",
    "model.d_model=16",
    "model.ff_dim=32",
    "model.num_layers=1",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=2",
]


def test_a_translation_run_records_metrics_examples_and_attention(train_cli) -> None:
    result, run_dir = train_cli(*TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for split in ("val", "test"):
        for name in ("exact_match", "token_acc", "bleu", "chrf", "loss"):
            assert f"{split}/{name}" in metrics
        examples = metrics["examples"][split]
        assert len(examples) == 8
        assert all(len(e["reference"]) == 10 and e["reference"][4] == "-" for e in examples)
        assert all(e["source"] and isinstance(e["output"], str) for e in examples)
    events = ea.EventAccumulator(str(run_dir / "tensorboard")).Reload()
    for split in ("val", "test"):
        table = events.Tensors(f"translations/{split}/text_summary")[-1]
        text = table.tensor_proto.string_val[0].decode()
        assert text.startswith("| source | reference | output |")
        assert metrics["examples"][split][0]["reference"] in text
    # Heatmaps at each of the fit's two validations; labelled figures once, for the best model.
    for name in ("mean", "heads"):
        assert len(events.Images(f"attention_cross/layer0_{name}")) == 2
        assert len(events.Images(f"attention_cross_final/layer0_{name}")) == 1
    evaluated = run_cli("archlab.cli.evaluate", str(run_dir))
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    again = json.loads(evaluated.stdout)
    assert again["test/exact_match"] == pytest.approx(metrics["test/exact_match"])
    assert again["test/chrf"] == pytest.approx(metrics["test/chrf"], abs=1e-3)


def _pairs(tmp_path: Path, *overrides: str):
    cfg = validate(compose_config("train", ["data=pairs", "task=translate", *overrides]))
    data = build_datamodule(cfg.data, seed=0)
    data.setup("fit")
    return data


def test_user_tsv_csv_and_jsonl_pairs_with_tokenizers_fitted_on_train(tmp_path: Path) -> None:
    folder = tmp_path / "tsv"
    folder.mkdir()
    (folder / "train.tsv").write_text("hello\tbonjour\tCC-BY attribution\ncat\tchat\n" * 20)
    (folder / "val.tsv").write_text("hello\tbonjour\n")
    (folder / "test.tsv").write_text("zebra\tzèbre\n")
    data = _pairs(tmp_path, "data.source=tsv", f"data.path={folder}")
    source, target = data.tensors["test"]
    unk = data.source_tokenizer.unk_id
    assert source[0, 0] == unk and source[0, 1] != unk  # z unseen in train, e seen
    assert data.decode_target(target[0].tolist()) != "zèbre"  # z, è unseen: <unk>
    assert data.decode_target(data.tensors["train"][1][0].tolist()) == "bonjour"
    assert target[0, 0] == data.bos_id and data.eos_id in target[0].tolist()
    # Separate vocabularies by default; one shared on request.
    assert data.source_tokenizer.to_json() != data.target_tokenizer.to_json()
    shared = _pairs(tmp_path, "data.source=tsv", f"data.path={folder}", "data.shared_vocab=true")
    assert shared.source_tokenizer.to_json() == shared.target_tokenizer.to_json()

    rows = [{"en": f"number {i}", "fr": f"nombre {i}"} for i in range(30)]
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows))
    csv = tmp_path / "pairs.csv"
    csv.write_text("en,fr\n" + "\n".join(f"{r['en']},{r['fr']}" for r in rows))
    for path in (jsonl, csv):
        data = _pairs(
            tmp_path,
            f"data.source={path.suffix[1:]}",
            f"data.path={path}",
            "data.source_field=en",
            "data.target_field=fr",
        )
        train = [data.decode_target(t) for t in data.tensors["train"][1].tolist()]
        assert all(t.startswith("nombre ") for t in train) and len(train) >= 18


def test_a_malformed_tsv_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_text("one\tun\ntwo deux\n")
    with pytest.raises(DataError, match=r"pairs.tsv, line 2: expected `source<TAB>target`"):
        _pairs(tmp_path, "data.source=tsv", f"data.path={path}")


def test_an_mlm_pretrained_encoder_transfers_into_a_translator(tmp_path: Path) -> None:
    model_cfg = validate(compose_config("train", ["model=transformer"])).model
    spec = TextSpec(vocab_size=40, length=24)
    pretrained = build_pretrainer(model_cfg, spec, "mlm")
    checkpoint = {"state_dict": {f"model.{k}": v for k, v in pretrained.state_dict().items()}}
    translator = build_translator(model_cfg, spec, target_vocab=15, target_length=12)
    report = transfer_weights(translator, checkpoint, Path("mlm.ckpt"))
    assert "stem.embed" in report.loaded and "backbone.blocks.0.attn.qkv" in report.loaded
    assert report.missing == []
    for name, value in pretrained.state_dict().items():
        if name.startswith(("stem.", "backbone.")):
            assert torch.equal(translator.state_dict()[name], value)
    # The translator then reads sources with the pretrained run's tokenizer.
    texts = ["the quick brown fox", "jumps over"]
    tokenizer = fit_tokenizer("char", texts, 100)
    data = build_datamodule(
        validate(compose_config("train", ["data=pairs", "task=translate"])).data
    )
    data.adopt_encoder({"TextDataModule": {"tokenizer": tokenizer.to_json(), "length": 24}})
    assert data.fitted == {"source_tokenizer": tokenizer.to_json(), "source_length": 24}
