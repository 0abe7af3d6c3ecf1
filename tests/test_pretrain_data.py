"""`pretrain.data`: the pretrain stage reads its own data; the tokenizer it fits travels into
finetuning (the finetune text gets the pretraining's ids); a pair that cannot transfer is
refused before any work, naming both sides."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archlab.config.job import JobContext
from archlab.config.preflight import compose_config
from archlab.config.validate import validate
from archlab.data.tokenizers import tokenizer_from_json
from archlab.errors import CheckpointError, ConfigError
from archlab.run.stages import run_stages, stage_config
from archlab.tasks.build import build_run

QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "logger=none"]
TINY = ["model=transformer", "model.d_model=16", "model.num_heads=2", "model.num_layers=1",
        "model.ff_dim=16", "model.dropout=0.0"]  # fmt: skip
CORPUS_ONLY = "Ωж"  # characters only the pretraining corpus has


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    corpus = root / "corpus.txt"
    corpus.write_text(
        "\n".join(f"line {i} of the corpus {CORPUS_ONLY[i % 2]} with words" for i in range(60))
    )
    labels = root / "labels.csv"
    rows = [f"short text number {i},{'a' if i % 2 else 'b'}" for i in range(40)]
    labels.write_text("text,label\n" + "\n".join(rows) + "\n")
    return {"corpus": corpus, "labels": labels}


def _pipeline(files: dict[str, Path]) -> list[str]:
    return [
        "data=text", *TINY, "data.source=csv", f"data.path={files['labels']}",
        "data.tokenizer=char", "data.max_length=32", "stages=[pretrain,finetune]",
        "+task@pretrain.task=lm", "+pretrain.data.source=corpus",
        f"+pretrain.data.path={files['corpus']}", "trainer.max_steps=2",
        "pretrain.trainer.max_steps=2", *QUIET,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def pipeline_run(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("pipeline") / "run"
    run_stages(validate(compose_config("train", _pipeline(files))), JobContext(run_dir=run_dir))
    return run_dir


def _saved_tokenizer(run_dir: Path) -> str:
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    return checkpoint["TextDataModule"]["tokenizer"]


def test_the_pretrain_stage_reads_its_own_corpus(pipeline_run: Path) -> None:
    pretrain_cfg = (pipeline_run / "pretrain" / ".hydra" / "config.yaml").read_text()
    assert "source: corpus" in pretrain_cfg and "corpus.txt" in pretrain_cfg
    tokenizer = tokenizer_from_json(_saved_tokenizer(pipeline_run / "pretrain"))
    ids = tokenizer.encode(list(CORPUS_ONLY), 1)[:, 0]
    assert (ids != tokenizer.unk_id).all()  # fitted on the corpus, not on the labelled texts


def test_finetuning_encodes_its_text_with_the_pretraining_tokenizer(
    pipeline_run: Path, files: dict[str, Path]
) -> None:
    pretrained = _saved_tokenizer(pipeline_run / "pretrain")
    assert _saved_tokenizer(pipeline_run / "finetune") == pretrained
    cfg = validate(compose_config("train", _pipeline(files)))
    datamodule, _ = build_run(stage_config(cfg, "finetune", pipeline_run / "pretrain"), {})
    tokenizer = tokenizer_from_json(pretrained)
    length = datamodule.spec.length
    text = f"short text number 3 {CORPUS_ONLY}"
    # Ended as the language model's texts were: with its end-of-text id.
    assert torch.equal(datamodule.transform([text]), tokenizer.encode_documents([text], length))
    assert tokenizer.eos_id in datamodule.transform([text])[0].tolist()
    train_ids = datamodule.tensors["train"][0]
    assert train_ids.max() < tokenizer.vocab_size
    # From scratch the labelled texts alone make the tokenizer: the corpus's characters are unknown.
    scratch, _ = build_run(stage_config(validate(compose_config("train", [
        "data=text", *TINY, "data.source=csv", f"data.path={files['labels']}",
        "data.tokenizer=char", *QUIET,
    ])), None), {})  # fmt: skip
    assert (scratch.transform([CORPUS_ONLY])[0, :2] == scratch.tokenizer.unk_id).all()


@pytest.mark.parametrize(
    ("overrides", "both_sides"),
    [
        (["data=text", "+pretrain.data.modality=image"],
         ["image data (source=digits)", "text data (source=stdlib_docs)"]),
        (["data=image", "+pretrain.data.source=cifar10"],
         ["(source=cifar10) has 3 channel(s)", "(source=digits) has 1"]),
        (["data=image", "+pretrain.data.source=corpus", "+pretrain.data.channels=3"],
         ["(source=corpus) has 3 channel(s)", "(source=digits) has 1"]),
        (["data=sequence", "model=rnn", "+pretrain.data.source=corpus",
          "+pretrain.data.num_features=3"],
         ["(source=corpus) has 3 feature(s)", "(source=digits) has 8"]),
        (["data=sequence", "model=rnn", "+pretrain.data.source=glyphs",
          "+pretrain.data.layout=pixels"],
         ["(source=glyphs) has 1 feature(s)", "(source=digits) has 8"]),
        (["data=text", "+pretrain.data.tokenizer=char"],
         ["char tokenizer", "bpe one"]),
    ],
)  # fmt: skip
def test_a_pair_that_cannot_transfer_is_refused_naming_both_sides(
    overrides: list[str], both_sides: list[str]
) -> None:
    task = "+task@pretrain.task=" + ("forecast" if "data=sequence" in overrides else "mlm")
    if "data=image" in overrides:
        task = "+task@pretrain.task=reconstruct"
    with pytest.raises(ConfigError) as caught:
        validate(compose_config("train", ["stages=[pretrain,finetune]", task, *overrides]))
    message = str(caught.value)
    assert message.startswith("The pretrain stage's data (pretrain.data) cannot transfer")
    for side in both_sides:
        assert side in message


def test_the_cli_refuses_a_pair_before_any_work(train_cli) -> None:
    result, run_dir = train_cli(
        "experiment=transfer_image", "pretrain.data.source=cifar10", "data.label_fraction=0.5"
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("archlab-train: error: The pretrain stage's data")
    assert not run_dir.exists()


def test_a_checkpoint_of_other_data_is_refused_before_finetuning(pipeline_run: Path) -> None:
    cfg = validate(compose_config("train", [f"finetune.init_from={pipeline_run / 'pretrain'}"]))
    with pytest.raises(CheckpointError) as caught:
        build_run(stage_config(cfg, None), {})
    message = str(caught.value)
    assert "cannot be finetuned on data=image (source=digits)" in message
    assert "text data (source=corpus)" in message
