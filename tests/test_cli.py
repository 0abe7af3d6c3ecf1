"""archlab-train and archlab-eval as a user runs them: every architecture on every modality,
Hydra's own flags, one-line errors for a user's mistakes, and evaluation of a finished run.

Everything here goes through the real entry points (`python -m archlab.train|evaluate`) in
subprocesses.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_accuracy_matches_confusion, run_cli
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

MODELS = ("cnn", "rnn", "transformer")
MODALITIES = ("image", "sequence", "text")
QUIET = ("trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")


def _mentions(text: str, word: str) -> bool:
    """`word` occurs in `text` as a whole name: `trainer.max_epoch` is not in `...max_epochs`."""
    return re.search(rf"(?<![\w.]){re.escape(word)}(?!\w)", text) is not None


def _read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _assert_user_error(
    result,
    prog: str,
    names: tuple[str, ...] = (),
) -> str:
    """Exit 2, `<prog>: error: <message>` on stderr naming each of `names`, no traceback."""
    stderr = result.stderr
    assert result.returncode == 2, f"exit {result.returncode}\n{stderr[-3000:]}"
    assert "Traceback" not in stderr, stderr[-3000:]
    prefix = f"{prog}: error: "
    errors = [line for line in stderr.splitlines() if line.startswith(prefix)]
    assert len(errors) == 1, stderr[-3000:]
    assert stderr.strip().splitlines() == errors, f"more than the error line:\n{stderr}"
    message = stderr[stderr.index(prefix) + len(prefix) :]
    for name in names:
        assert _mentions(message, name), f"{name!r} not named in: {message}"
    return message


# ---------------------------------------------------------------- every model on every modality
@pytest.fixture(scope="module")
def fast_dev_run(tmp_path_factory: pytest.TempPathFactory):
    """`archlab-train model=M data=D debug=fast_dev_run`, run once per module for each pair."""
    runs: dict[tuple[str, str], tuple] = {}

    def run(model: str, data: str):
        if (model, data) not in runs:
            run_dir = tmp_path_factory.mktemp(f"{model}-{data}") / "run"
            result = run_cli(
                "archlab.train", f"model={model}", f"data={data}", "debug=fast_dev_run",
                f"hydra.run.dir={run_dir}", *QUIET,
            )  # fmt: skip
            runs[model, data] = result, run_dir
        return runs[model, data]

    return run


@pytest.mark.parametrize("data", MODALITIES)
@pytest.mark.parametrize("model", MODELS)
def test_every_model_runs_on_every_modality(fast_dev_run, model: str, data: str) -> None:
    result, run_dir = fast_dev_run(model, data)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = _read_metrics(run_dir)
    assert_accuracy_matches_confusion(metrics, "test")
    assert math.isfinite(metrics["test/loss"])
    assert metrics["global_step"] == 1  # fast_dev_run: exactly one training batch
    # The run composed what was asked for, and recorded it in its own directory.
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert (cfg.model.name, cfg.data.modality) == (model, data)
    num_classes = len(metrics["classes"])
    test_confusion = np.array(metrics["confusion_matrix"]["test"])
    assert test_confusion.shape == (num_classes, num_classes)


def test_fast_dev_run_leaves_no_checkpoints(fast_dev_run) -> None:
    result, run_dir = fast_dev_run("cnn", "image")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (run_dir / "tensorboard").exists()  # no logs: this part holds
    assert list((run_dir / "checkpoints").glob("*.ckpt")) == []


# ---------------------------------------------------------------- Hydra's own flags
def test_help_lists_the_config_groups() -> None:
    result = run_cli("archlab.train", "--help")
    assert result.returncode == 0, result.stderr[-3000:]
    groups = {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1]
        for line in result.stdout.split("== Configuration groups ==", 1)[1].splitlines()
        if re.match(r"^\w+: ", line)
    }
    for group in ("model", "data", "task", "trainer", "logger", "callbacks", "debug"):
        assert group in groups, result.stdout[:3000]
    assert {o.strip() for o in groups["model"].split(",")} >= set(MODELS)
    assert {o.strip() for o in groups["data"].split(",")} >= set(MODALITIES)


def test_cfg_job_prints_the_composed_config_and_trains_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_cli(
        "archlab.train", "--cfg", "job", "model=transformer", "data=text",
        "model.num_layers=3", f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    cfg = OmegaConf.create(result.stdout)
    assert cfg.model.name == "transformer"
    assert cfg.model.num_layers == 3
    assert cfg.data.modality == "text"
    assert re.search(r"^model:$", result.stdout, re.M)
    assert re.search(r"^\s+name: transformer$", result.stdout, re.M)
    assert not run_dir.exists()


# ---------------------------------------------------------------- a user's mistakes
def _image_folder_with_a_corrupt_file(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 256, size=(10, 10), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"img{i}.png")
    (root / "dog" / "bad.png").write_bytes(rng.bytes(300))
    return root


BAD_CONFIGS = {
    "misspelt model key": (["model.chanels=[8]"], ("model.chanels", "model.channels")),
    "misspelt trainer key": (["trainer.max_epoch=3"], ("trainer.max_epoch", "trainer.max_epochs")),
    "wrong type": (["model.kernel_size=abc"], ("model.kernel_size", "abc")),
    "invalid choice": (["model=rnn", "model.cell=lsmt"], ("model.cell", "lsmt", "lstm")),
    "unknown group option": (["model=cnnn"], ("cnnn", "cnn")),
    "missing data path": (
        ["data.source=folder", "data.path=/nonexistent/x"],
        ("/nonexistent/x",),
    ),
}


@pytest.mark.parametrize(("overrides", "names"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_a_users_mistake_is_one_clear_error_and_leaves_no_run_directory(
    train_cli, overrides: list[str], names: tuple[str, ...]
) -> None:
    result, run_dir = train_cli(*overrides)
    _assert_user_error(result, "archlab-train", names)
    assert not run_dir.exists()


def test_a_corrupt_image_is_named_and_leaves_no_run_directory(train_cli, tmp_path: Path) -> None:
    root = _image_folder_with_a_corrupt_file(tmp_path / "images")
    result, run_dir = train_cli("data.source=folder", f"data.path={root}", "data.image_size=[8,8]")
    _assert_user_error(result, "archlab-train", ("bad.png",))
    assert not run_dir.exists()


def test_an_unknown_group_option_is_a_one_line_error_with_a_suggestion(train_cli) -> None:
    result, _ = train_cli("model=cnnn")
    message = _assert_user_error(result, "archlab-train", ("cnnn",))
    assert _mentions(message, "cnn")


@pytest.mark.parametrize(
    "flags",
    [["-m", "model=cnn,rnn", "debug=fast_dev_run"], ["--cfg", "job"]],
    ids=["multirun", "cfg-job"],
)
def test_a_misspelt_key_with_hydra_flags_is_the_same_clear_error(
    tmp_path: Path, flags: list[str]
) -> None:
    result = run_cli(
        "archlab.train", *flags, "model.chanels=[8]",
        f"hydra.sweep.dir={tmp_path / 'sweep'}", f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    _assert_user_error(result, "archlab-train", ("model.chanels", "model.channels"))


@pytest.mark.parametrize(
    ("override", "key"),
    [("data.batch_size=0", "data.batch_size"), ("task.optimizer.lr=-1", "task.optimizer.lr")],
)
def test_an_impossible_value_is_one_clear_error(train_cli, override: str, key: str) -> None:
    result, run_dir = train_cli(override, "debug=fast_dev_run")
    _assert_user_error(result, "archlab-train", (key,))
    assert not run_dir.exists()


# ---------------------------------------------------------------- a finished run; archlab-eval
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short but complete run (best.ckpt, last.ckpt, metrics.json), started in a fresh
    working directory with a relative `hydra.run.dir`."""
    cwd = tmp_path_factory.mktemp("workdir")
    result = run_cli(
        "archlab.train", "trainer.max_epochs=2", "trainer.limit_train_batches=4",
        "hydra.run.dir=my/runs/first", *QUIET, cwd=cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "my" / "runs" / "first"


def test_hydra_run_dir_is_honoured_relative_to_the_working_directory(finished_run: Path) -> None:
    cwd = finished_run.parents[2]
    assert sorted(p.name for p in cwd.iterdir()) == ["my"]  # nothing in outputs/runs/...
    assert (finished_run / "metrics.json").is_file()
    assert (finished_run / "checkpoints" / "best.ckpt").is_file()
    assert (finished_run / ".hydra" / "config.yaml").is_file()
    overrides = OmegaConf.load(finished_run / ".hydra" / "overrides.yaml")
    assert "trainer.max_epochs=2" in overrides
    assert _read_metrics(finished_run)["epochs"] == 2


def _evaluate(*args: str) -> dict:
    result = run_cli("archlab.cli.evaluate", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)  # stdout is the JSON alone, ready for a pipe


def _assert_same_metrics(printed: dict, recorded: dict, split: str) -> None:
    expected = {k: v for k, v in recorded.items() if k.startswith(f"{split}/")}
    assert {"acc", "f1", "loss"} <= {k.split("/", 1)[1] for k in expected}
    got = {k: v for k, v in printed.items() if k != "checkpoint"}
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key


def test_eval_of_a_run_directory_reproduces_its_test_metrics(finished_run: Path) -> None:
    printed = _evaluate(str(finished_run))
    recorded = _read_metrics(finished_run)
    _assert_same_metrics(printed, recorded, "test")
    assert Path(printed["checkpoint"]) == finished_run / recorded["best_checkpoint"]


def test_eval_of_a_checkpoint_file_reproduces_its_test_metrics(
    finished_run: Path, tmp_path: Path
) -> None:
    # A copy elsewhere: the checkpoint alone carries everything needed (config, statistics).
    ckpt = tmp_path / "model.ckpt"
    shutil.copy(finished_run / "checkpoints" / "best.ckpt", ckpt)
    output = tmp_path / "out" / "eval.json"
    printed = _evaluate(str(ckpt), "--output", str(output))
    _assert_same_metrics(printed, _read_metrics(finished_run), "test")
    assert Path(printed["checkpoint"]) == ckpt
    assert json.loads(output.read_text()) == printed


def test_eval_split_val_reproduces_the_val_metrics(finished_run: Path) -> None:
    printed = _evaluate(str(finished_run), "--split", "val")
    _assert_same_metrics(printed, _read_metrics(finished_run), "val")


def test_eval_of_a_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_run"
    result = run_cli("archlab.cli.evaluate", str(missing))
    _assert_user_error(result, "archlab-eval", (str(missing),))


@pytest.mark.parametrize("kind", ["random-bytes", "truncated"])
def test_eval_of_a_corrupt_checkpoint_is_a_clear_error(
    finished_run: Path, tmp_path: Path, kind: str
) -> None:
    ckpt = tmp_path / "broken.ckpt"
    if kind == "random-bytes":
        ckpt.write_bytes(np.random.default_rng(0).bytes(4096))
    else:
        data = (finished_run / "checkpoints" / "best.ckpt").read_bytes()
        ckpt.write_bytes(data[: len(data) // 2])
    # The premise: torch itself cannot load it.
    with pytest.raises((pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError)):
        torch.load(ckpt, weights_only=True)
    result = run_cli("archlab.cli.evaluate", str(ckpt))
    _assert_user_error(result, "archlab-eval", (str(ckpt),))


# ---------------------------------------------------------------- debug presets
def test_overfit_preset_trains_on_the_same_two_batches(train_cli) -> None:
    result, run_dir = train_cli("debug=overfit", "trainer.max_epochs=3", "test_after_fit=false")
    assert result.returncode == 0, result.stderr[-3000:]
    assert _read_metrics(run_dir)["global_step"] == 6


def test_profile_preset_prints_the_profiler_report(train_cli) -> None:
    result, run_dir = train_cli("debug=profile", "test_after_fit=false")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Profiler Report" in result.stdout + result.stderr
    assert _read_metrics(run_dir)["epochs"] == 1


# ---------------------------------------------------------------- a diverging run
NAN_LOSS = ("task.optimizer.name=sgd", "task.optimizer.lr=1e12", "task.scheduler.warmup_steps=0")


def test_a_nonfinite_loss_stops_with_a_diagnosis(train_cli) -> None:
    result, _ = train_cli(*NAN_LOSS)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    # Training had started, so Lightning's own notices may precede the error line.
    (message,) = [m for m in result.stderr.splitlines() if m.startswith("archlab-train: error:")]
    assert _mentions(message, "task.optimizer.lr"), message
    assert re.search(r"at step \d+ \(epoch \d+\)", message), message
    assert "task.on_nonfinite=skip" in message


def test_a_nonfinite_loss_can_skip_the_batch_instead(train_cli) -> None:
    batches = 5
    result, run_dir = train_cli(
        *NAN_LOSS, "task.on_nonfinite=skip", "trainer.max_epochs=1",
        f"trainer.limit_train_batches={batches}", "trainer.log_every_n_steps=1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # The first steps (finite loss) blow the weights up; the batches after them are skipped
    # (no stop) and counted on the training curves.
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    skipped = [e.value for e in events.Scalars("train/skipped_batches")]
    assert 1 <= max(skipped) <= batches - 1, skipped
