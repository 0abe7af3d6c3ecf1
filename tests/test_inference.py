"""Using a trained model from its run directory alone: predictions on new images, series and
texts agree with the evaluation pipeline (same preprocessing), inputs that do not fit are
fixed (said once) or refused one by one, generation is seeded and its key/value cache changes
nothing, and exports run in ONNX Runtime with the eager model's predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from archlab.cli import export as export_cli
from archlab.cli import generate as generate_cli
from archlab.cli import predict as predict_cli
from archlab.config.job import JobContext
from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.data import build_datamodule
from archlab.data.transforms import STATE_KEYS
from archlab.inference.loader import load_trained
from archlab.inference.parity import validation_inputs
from archlab.inference.sampling import Sampling, generate
from archlab.run.fit import fit
from archlab.run.stages import stage_config

TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "test_after_fit=false",
    "logger=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]
TEXT = ["data=text", "data.tokenizer=char", "data.max_length=48", "data.max_per_class=40"]
RUNS = {
    "image": ["model=cnn", "data=image", "model.channels=[8,8]", "model.fc_dims=[16]"],
    "sequence": ["model=rnn", "data=sequence", "model.hidden_size=16"],
    "text": ["model=transformer", *TEXT, "model.d_model=32", "model.ff_dim=32"],
    "lm": ["model=transformer", *TEXT, "task=lm", "model.d_model=32", "model.ff_dim=32"],
    "lm_rnn": ["model=rnn", *TEXT, "task=lm", "model.hidden_size=32"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny run per case, trained in-process for two steps."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, overrides in RUNS.items():
        cfg = stage_config(validate(compose_config("train", [*overrides, *TINY])), None)
        fit(cfg, root / name, JobContext(root / name))
        out[name] = root / name
    return out


def _eval_pipeline(run: Path):
    """The raw validation inputs, and the tensors and probabilities archlab-eval's path gives
    them: the data module restored from the checkpoint."""
    model = load_trained(run)
    datamodule = build_datamodule(model.cfg.data)
    checkpoint = torch.load(model.checkpoint, weights_only=True)
    datamodule.load_state_dict(checkpoint[STATE_KEYS[model.modality]])
    raw = datamodule._complete(datamodule.read())["val"].inputs[:20]
    x = datamodule.transform(raw)
    with torch.no_grad():
        return model, raw, x, model.network(x).softmax(-1)


def _predict(capsys, *argv: str) -> tuple[list[dict], str]:
    predict_cli.main(list(argv))
    captured = capsys.readouterr()
    return captured.out, captured.err


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_series_predictions_match_the_evaluation_pipeline(runs, tmp_path, capsys) -> None:
    model, raw, _x, probs = _eval_pipeline(runs["sequence"])
    values = raw.reshape(20, -1)
    csv = tmp_path / "new.csv"  # with its label column: ignored
    header = ",".join([f"v{i}" for i in range(values.shape[1])] + ["label"])
    rows = [",".join([*map(str, v.tolist()), "x"]) for v in values]
    csv.write_text("\n".join([header, *rows]) + "\n")
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text("\n".join([header[: header.rindex(",")], *[r[:-2] for r in rows]]))
    out = tmp_path / "p.jsonl"
    _predict(capsys, str(runs["sequence"]), str(csv), str(unlabelled), "--output", str(out))
    records = _jsonl(out)
    assert [r["id"] for r in records[:2]] == [f"{csv}:1", f"{csv}:2"]
    assert len(records) == 40
    for i, record in enumerate(records):
        expected = probs[i % 20]
        assert record["class"] == model.classes[int(expected.argmax())]
        assert record["probability"] == pytest.approx(float(expected.max()), abs=1e-5)
        assert len(record["top_k"]) == 3


def test_series_of_another_shape_are_padded_or_refused_alone(runs, tmp_path, capsys) -> None:
    def write(name: str, columns: int) -> Path:
        path = tmp_path / name
        rng = np.random.default_rng(0)
        lines = [",".join(f"c{i}" for i in range(columns))]
        lines += [",".join(f"{v:.3f}" for v in rng.random(columns) * 16) for _ in range(2)]
        path.write_text("\n".join(lines) + "\n")
        return path

    short, long, bad = write("short.csv", 56), write("long.csv", 72), write("bad.csv", 60)
    out = tmp_path / "p.csv"
    _, err = _predict(
        capsys, str(runs["sequence"]), str(short), str(long), str(bad), "--output", str(out)
    )
    lines = out.read_text().splitlines()
    assert lines[0] == "id,class,probability,top_k,error"
    assert len(lines) == 1 + 2 + 2 + 1  # each row of each file, or the file when unreadable
    assert all(line.endswith(",") for line in lines[1:3])  # the short ones: predicted
    assert "9 steps, the model reads 8" in lines[3] and "9 steps" in lines[4]
    assert "60 is not divisible by 8" in lines[5]
    assert err.count("padded at the end to the model's 8 steps") == 1
    assert "2 input(s) padded" in err and "3 of 5 input(s) refused" in err


def test_image_files_are_resized_converted_and_refused_one_by_one(runs, tmp_path, capsys):
    model, raw, _x, probs = _eval_pipeline(runs["image"])
    raw = raw[:4]
    folder = tmp_path / "images"
    folder.mkdir()
    for i, digit in enumerate(raw):  # the digits' 0-16 ink as 0-255 PNGs
        Image.fromarray(np.round(digit[0] * 255 / 16).astype(np.uint8)).save(folder / f"{i}.png")
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(tmp_path / "rgb.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "p.jsonl"
    _, err = _predict(
        capsys, str(runs["image"]), str(folder), str(tmp_path / "rgb.png"),
        str(tmp_path / "broken.png"), "--output", str(out), "--top-k", "2",
    )  # fmt: skip
    records = _jsonl(out)
    assert [Path(r["id"]).name for r in records] == ["0.png", "1.png", "2.png", "3.png",
                                                     "rgb.png", "broken.png"]  # fmt: skip
    for record, expected in zip(records[:4], probs[:4], strict=True):
        assert record["class"] == model.classes[int(expected.argmax())]
        assert record["probability"] == pytest.approx(float(expected.max()), abs=0.02)
    assert records[4]["class"] in model.classes and len(records[4]["top_k"]) == 2
    assert records[5]["error"] == "not a readable image"
    assert "1 input(s) resized to the model's 8x8 pixels" in err
    assert "1 input(s) converted from RGB to the model's L mode" in err


def test_texts_from_txt_and_jsonl_match_the_pipeline_and_empty_ones_are_refused(
    runs, tmp_path, capsys
) -> None:
    model, texts, _x, probs = _eval_pipeline(runs["text"])
    one_line = [t.replace("\n", " ") for t in texts]
    txt = tmp_path / "new.txt"
    txt.write_text("\n".join([one_line[0], "   ", one_line[1]]) + "\n")
    jsonl = tmp_path / "new.jsonl"
    jsonl.write_text("".join(json.dumps({"body": t}) + "\n" for t in texts[:2]))
    out = tmp_path / "p.jsonl"
    _, err = _predict(
        capsys, str(runs["text"]), str(txt), str(jsonl), "--field", "body", "--output", str(out)
    )
    records = _jsonl(out)
    assert [r["id"] for r in records] == [
        f"{txt}:1", f"{txt}:2", f"{txt}:3", f"{jsonl}:1", f"{jsonl}:2",
    ]  # fmt: skip
    assert records[1]["error"] == "empty text"
    for record, expected in zip([records[3], records[4]], probs[:2], strict=True):
        assert record["class"] == model.classes[int(expected.argmax())]
        assert record["probability"] == pytest.approx(float(expected.max()), abs=1e-5)
    assert "truncated to the model's 48 tokens" in err


def test_the_default_output_is_a_table_and_a_language_model_is_sent_to_generate(
    runs, tmp_path, capsys
) -> None:
    txt = tmp_path / "a.txt"
    txt.write_text("Return the logger with the given name.\n")
    out, _ = _predict(capsys, str(runs["text"]), str(txt))
    header, row = out.splitlines()
    assert header.split() == ["id", "class", "probability", "top-k"]
    assert row.startswith(f"{txt}:1")
    with pytest.raises(SystemExit) as stop:
        predict_cli.main([str(runs["lm"]), str(txt)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "task=lm" in err and "Use archlab-generate" in err


@pytest.mark.parametrize("name", ["lm", "lm_rnn"])
def test_cached_decoding_gives_exactly_the_uncached_tokens(runs, name) -> None:
    model = load_trained(runs[name])
    prompt = model.tokenizer.encode(["Return the "], 11)[None, 0]
    for sampling in (Sampling(temperature=0), Sampling(0.9, top_k=20, top_p=0.9)):
        outs = [
            generate(
                model.network,
                prompt.expand(3, -1),
                30,
                sampling,
                torch.Generator().manual_seed(1),
                use_cache=cache,
            )
            for cache in (True, False)
        ]
        assert outs[0].shape[1] > prompt.shape[1]
        assert torch.equal(outs[0], outs[1])


def test_generate_same_seed_same_text_and_a_classifier_is_refused(runs, tmp_path, capsys):
    def run(*extra: str) -> list[dict]:
        generate_cli.main([str(runs["lm"]), "--prompt", "The ", "--num-samples", "2",
                           "--max-new-tokens", "20", "--jsonl", *extra])  # fmt: skip
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    first, again, other = run("--seed", "3"), run("--seed", "3"), run("--seed", "4")
    assert first == again
    assert [r["text"] for r in first] != [r["text"] for r in other]
    assert all(r["text"].startswith("The ") and r["new_tokens"] == 20 for r in first)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Return\nThe value\n")
    generate_cli.main([str(runs["lm_rnn"]), "--prompts", str(prompts), "--max-new-tokens", "5",
                       "--temperature", "0"])  # fmt: skip
    out = capsys.readouterr().out
    assert "--- prompt 2, sample 1 (5 new tokens" in out and "\nThe value" in out
    with pytest.raises(SystemExit):
        generate_cli.main([str(runs["text"]), "--prompt", "x"])
    assert "task=classify" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name", [pytest.param("image", marks=pytest.mark.slow), "sequence",
             pytest.param("text", marks=pytest.mark.slow)],
)  # fmt: skip
def test_onnx_export_runs_in_onnx_runtime_with_the_eager_predictions(runs, name, capsys):
    ort = pytest.importorskip("onnxruntime")
    export_cli.main([str(runs[name]), "--format", "onnx"])
    out = capsys.readouterr().out
    assert "same predictions: True" in out and "validation examples" in out
    onnx_file = runs[name] / "export" / "model.onnx"
    info = json.loads((runs[name] / "export" / "model.onnx.json").read_text())
    model, _, x, _probs = _eval_pipeline(runs[name])
    assert info["classes"] == model.classes and info["parity"]["passed"]
    assert info["input"]["shape"][0] == "batch"
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    batch = x[:3] if name == "image" else x[:3, : x.shape[1] - 2]  # another batch and length
    with torch.no_grad():
        eager = model.network(batch)
    logits = torch.from_numpy(session.run(None, {"input": batch.numpy()})[0])
    assert (logits - eager).abs().max() < 1e-4
    if name == "text":
        assert (runs[name] / "export" / info["tokenizer"]["file"]).is_file()
    else:
        assert len(info["normalization"]["mean"]) == x.shape[1 if name == "image" else 2]


def test_torch_export_program_matches_eager(runs, tmp_path, capsys) -> None:
    target = tmp_path / "seq.pt2"
    export_cli.main([str(runs["sequence"]), "--format", "torch-export", "--output", str(target)])
    program = torch.export.load(target)
    model, _, x, _ = _eval_pipeline(runs["sequence"])
    with torch.no_grad():
        assert torch.allclose(program.module()(x[:5]), model.network(x[:5]), atol=1e-5)
    info = json.loads((tmp_path / "seq.pt2.json").read_text())
    assert info["format"] == "torch-export"
    assert info["input"]["shape"] == ["batch", 8, 8]  # torch.export unrolls the LSTM: fixed


def test_a_checkpoint_whose_config_names_a_callable_is_refused(runs, tmp_path, capsys) -> None:
    checkpoint = torch.load(runs["lm"] / "checkpoints" / "best.ckpt", weights_only=True)
    marker = tmp_path / "pwned"
    checkpoint["hyper_parameters"]["model"]["_target_"] = "os.system"
    checkpoint["hyper_parameters"]["model"]["command"] = f"touch {marker}"
    crafted = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, crafted)
    with pytest.raises(SystemExit):
        generate_cli.main([str(crafted), "--prompt", "x"])
    assert "model._target_" in capsys.readouterr().err
    assert not marker.exists()


def test_the_parity_check_says_when_the_runs_data_is_not_here(runs) -> None:
    model = load_trained(runs["sequence"])
    model.cfg = OmegaConf.merge(model.cfg, {"data": {"source": "csv", "path": "/moved/away.csv"}})
    x, source = validation_inputs(model, 5)
    assert x.shape == (5, 8, 8)
    assert source.startswith("5 random inputs (the run's data is not here: data.path=/moved")
