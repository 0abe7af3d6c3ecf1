"""Scale: DDP from Hydra (single runs and sweeps) through torchrun on CPU (gloo), the same
result on 1 and 2 processes, checkpoints across device counts, mixed precision, compile,
refusals of what this machine cannot run, capacity planning and the SLURM job shape.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from tensorboard.backend.event_processing import event_accumulator as ea

QUIET = ("trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")
# Dropout and BatchNorm would make 1 and 2 processes differ by design (per-process masks and
# batch statistics); without them the runs must agree up to float summation order.
EXACT = ("model.batch_norm=false", "model.dropout=0", "trainer.max_epochs=1")
STEPS = "trainer.limit_train_batches=8"
DDP_CPU = ("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2")
TOLERANCE = 1e-5


def _train(run_dir: Path, *overrides: str) -> dict:
    result = run_cli("archlab.train", *overrides, f"hydra.run.dir={run_dir}", *QUIET)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((run_dir / "metrics.json").read_text())


def _metrics(record: dict, prefix: str = "") -> dict[str, float]:
    return {k: v for k, v in record.items() if k.startswith(prefix or ("val/", "test/"))}


def _user_error(result) -> str:
    """Exit 2 and exactly one `archlab-train: error:` line; no traceback."""
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stderr[-4000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    errors = [x for x in result.stderr.splitlines() if x.startswith("archlab-train: error: ")]
    assert len(errors) == 1, result.stderr[-4000:]
    return errors[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same experiment at global batch 64: one process x 64, two DDP processes x 32."""
    root = tmp_path_factory.mktemp("scale")
    _train(root / "one", *EXACT, STEPS, "trainer=cpu", "data.batch_size=64")
    _train(root / "two", *EXACT, STEPS, *DDP_CPU, "data.batch_size=32")
    return {"root": root, "one": root / "one", "two": root / "two"}


def test_ddp_run_writes_one_run_directory_from_rank_zero(runs: dict[str, Path]) -> None:
    assert sorted(p.name for p in runs["root"].iterdir()) == ["one", "two"]
    run = runs["two"]
    for name in (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml",
                 "checkpoints/best.ckpt", "checkpoints/last.ckpt", "metrics.json",
                 "manifest.json"):  # fmt: skip
        assert (run / name).is_file(), name
    # TensorBoard events from one process only (rank 0): the pid is in each file's name.
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and len({e.name.split(".")[-2] for e in events}) == 1, events
    curves = ea.EventAccumulator(str(run / "tensorboard"), size_guidance={ea.SCALARS: 0})
    assert len(curves.Reload().Scalars("val/loss")) == 1  # one epoch, one point, not two
    assert "trainer.devices=2" in (run / ".hydra/overrides.yaml").read_text()
    checkpoint = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 8


def test_ddp_evaluates_every_example_exactly_once(runs: dict[str, Path]) -> None:
    """Test metrics are reduced across processes with no padded duplicates: the confusion
    matrix of 2 processes counts as many examples as the single process's."""
    for split in ("val", "test"):
        matrices = [
            json.loads((runs[r] / "metrics.json").read_text())["confusion_matrix"][split]
            for r in ("one", "two")
        ]
        counts = [sum(map(sum, matrix)) for matrix in matrices]
        assert counts[0] == counts[1] > 0, (split, counts)


def test_one_and_two_processes_give_the_same_result(runs: dict[str, Path]) -> None:
    one = json.loads((runs["one"] / "metrics.json").read_text())
    two = json.loads((runs["two"] / "metrics.json").read_text())
    for key, value in _metrics(one).items():
        assert two[key] == pytest.approx(value, abs=TOLERANCE), key
    weights = [
        torch.load(runs[r] / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
        for r in ("one", "two")
    ]
    assert weights[0].keys() == weights[1].keys()
    for key, tensor in weights[0].items():
        torch.testing.assert_close(weights[1][key], tensor, atol=TOLERANCE, rtol=0)


@pytest.mark.slow
def test_ddp_pretraining_records_the_mean_over_every_process(tmp_path: Path) -> None:
    """A self-supervised run under DDP records val/test losses over all examples (the mean of
    both processes), as a single process evaluating the same checkpoint finds them."""
    run = tmp_path / "ddp"
    recorded = _train(run, *DDP_CPU, "data=sequence", "model=rnn", "task=forecast",
                      "trainer.max_steps=2")  # fmt: skip
    for split in ("val", "test"):
        result = run_cli("archlab.cli.evaluate", str(run), "--split", split)
        assert result.returncode == 0, result.stderr[-3000:]
        single = json.loads(result.stdout)[f"{split}/loss"]
        assert recorded[f"{split}/loss"] == pytest.approx(single, rel=1e-5), split


def test_a_ddp_checkpoint_loads_in_single_process_eval(runs: dict[str, Path]) -> None:
    result = run_cli("archlab.cli.evaluate", str(runs["two"]))
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads(result.stdout)
    recorded = json.loads((runs["two"] / "metrics.json").read_text())
    for key, value in _metrics(recorded, "test/").items():
        assert evaluated[key] == pytest.approx(value, abs=TOLERANCE), key


def test_a_users_mistake_in_a_rank_is_the_same_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    result = run_cli(
        "archlab.train", *DDP_CPU, "data=sequence", "data.source=csv", f"data.path={missing}",
        f"hydra.run.dir={tmp_path / 'run'}", *QUIET,
    )  # fmt: skip
    assert str(missing) in _user_error(result)
    assert "ChildFailedError" not in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_ddp_inside_a_multirun_launches_each_job_once(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_cli(
        "archlab.train", "-m", *DDP_CPU, "seed=1,2", "trainer.max_steps=2",
        "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
        f"hydra.sweep.dir={sweep}", *QUIET, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    output = result.stdout + result.stderr
    assert output.count("Launching 2 jobs locally") == 1, output[-4000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]
    # One directory per job (named after its overrides), nothing else.
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [job.name.split(",")[0] for job in jobs] == ["seed=1", "seed=2"]
    for job in jobs:
        assert "test/acc" in json.loads((job / "metrics.json").read_text())


@pytest.mark.slow
def test_a_signalled_ddp_job_stops_all_ranks_and_resumes(tmp_path: Path) -> None:
    """SIGTERM to the job: every rank stops at the same batch, last.ckpt is saved, the job
    exits 143 with rank 0's message; the same command then resumes from that step."""
    run_dir = tmp_path / "run"
    args = [*DDP_CPU, "trainer.limit_train_batches=4", "logger=none",
            f"hydra.run.dir={run_dir}", *QUIET]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    job = subprocess.Popen(
        [sys.executable, "-m", "archlab.train", *args, "trainer.max_epochs=1000"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    last = run_dir / "checkpoints/last.ckpt"
    deadline = time.monotonic() + 240
    while not last.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    job.send_signal(signal.SIGTERM)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 143, stderr[-3000:]
    assert stderr.strip().splitlines()[-1].startswith("archlab-train: stopped by SIGTERM at step")
    assert "Traceback" not in stderr
    step = torch.load(last, weights_only=True)["global_step"]
    assert f"at step {step};" in stderr

    result = run_cli("archlab.train", *args, f"trainer.max_steps={step + 4}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Restored all states from the checkpoint" in result.stdout + result.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["global_step"] == step + 4


@pytest.mark.slow
def test_ranks_started_by_srun_train_as_one_job(tmp_path: Path) -> None:
    """Two processes with the environment srun gives two tasks of one job: each runs the
    ordinary command, Lightning's SLURM environment makes them ranks 0 and 1, and the job
    starts no torchrun of its own."""
    run_dir = tmp_path / "run"
    common = {
        **os.environ, "OMP_NUM_THREADS": "1", "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_NODEID": "0", "SLURM_NODELIST": "127.0.0.1", "SLURM_JOB_NAME": "archlab",
        "SLURM_JOB_ID": "4242", "MASTER_PORT": str(_free_port()),
    }  # fmt: skip
    command = [sys.executable, "-m", "archlab.train", *DDP_CPU, *EXACT, STEPS,
               f"hydra.run.dir={run_dir}", *QUIET]  # fmt: skip
    tasks = [
        subprocess.Popen(
            command,
            env={**common, "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in (0, 1)
    ]
    outputs = [task.communicate(timeout=300)[0] for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    joined = "".join(outputs)
    assert "SLURM auto-requeueing enabled" in joined
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in joined
    assert "archlab.cli.rank_entry" not in joined and "torchelastic" not in joined
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["global_step"] == 8


@pytest.mark.slow
def test_ranks_started_by_an_outer_torchrun_train_as_one_job(tmp_path: Path) -> None:
    """What every machine of a torchrun --nnodes job runs: the ordinary command as a rank."""
    run_dir = tmp_path / "run"
    result = run_cli(
        "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "archlab.train",
        *DDP_CPU, *EXACT, STEPS, f"hydra.run.dir={run_dir}", *QUIET,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert output.count("MEMBER: ") == 2  # the two ranks, and no nested launch of more
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert json.loads((run_dir / "metrics.json").read_text())["global_step"] == 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_job(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_cli(
        "archlab.train", "-m", "hydra/launcher=slurm_local", "trainer.max_steps=2",
        "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
        f"hydra.sweep.dir={sweep}", *QUIET,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Submitit 'local' sweep output dir" in result.stdout + result.stderr
    (job,) = (p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert "test/acc" in json.loads((job / "metrics.json").read_text())
    assert any((sweep / ".submitit").rglob("*_result.pkl"))  # submitit's own job record


# ---------------------------------------------------------------- precision and compile
@pytest.mark.parametrize(
    "precision",
    [
        "bf16-mixed",
        pytest.param("bf16-true", marks=pytest.mark.slow),
        pytest.param("16-mixed", marks=pytest.mark.slow),
    ],
)
def test_bf16_precision_trains(tmp_path: Path, precision: str) -> None:
    """The precision is applied: the same seed and steps in 32-bit give other numbers."""
    steps = ("trainer=cpu", "trainer.max_steps=4", "trainer.limit_val_batches=1",
             "trainer.limit_test_batches=2")  # fmt: skip
    record = _train(tmp_path / "run", *steps, f"trainer.precision={precision}")
    full = _train(tmp_path / "fp32", *steps, "trainer.precision=32-true")
    assert torch.isfinite(torch.tensor(record["test/loss"]))
    assert record["test/loss"] != full["test/loss"]
    weights = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    dtypes = {t.dtype for t in weights["state_dict"].values() if t.is_floating_point()}
    # bf16-true keeps the weights themselves in bf16; mixed precision keeps fp32 masters.
    assert dtypes == ({torch.bfloat16} if precision == "bf16-true" else {torch.float32})


@pytest.mark.slow
def test_compile_true_trains_a_compiled_model(tmp_path: Path) -> None:
    cache = tmp_path / "inductor"
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)  # inherited by the subprocess
    try:
        record = _train(
            tmp_path / "run", "compile=true", "model=cnn", "model.channels=[8]",
            "trainer.max_steps=3", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
        )  # fmt: skip
    finally:
        del os.environ["TORCHINDUCTOR_CACHE_DIR"]
    assert "test/acc" in record
    assert any(cache.rglob("*.py")), "torch.compile generated no kernels"
    state = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    assert not any("_orig_mod" in key for key in state)  # checkpoints stay loadable uncompiled


# ---------------------------------------------------------------- refused before any work
def test_fsdp_on_cpu_is_refused_before_any_work(train_cli) -> None:
    result, run_dir = train_cli("trainer=fsdp", "trainer.accelerator=cpu")
    message = _user_error(result)
    assert "trainer.strategy=fsdp requires a GPU accelerator" in message
    assert "trainer=ddp" in message
    assert not run_dir.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_a_gpu_trainer_without_a_gpu_is_refused_before_any_work(train_cli) -> None:
    result, run_dir = train_cli("trainer=fsdp")
    assert "torch.cuda.is_available() is False" in _user_error(result)
    assert not run_dir.exists()


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="installed")
def test_deepspeed_missing_is_refused_with_the_install_command(train_cli) -> None:
    result, run_dir = train_cli("trainer=deepspeed")
    assert "pip install 'archlab[deepspeed]'" in _user_error(result)
    assert not run_dir.exists()


# ---------------------------------------------------------------- capacity planning
def test_plan_prints_parameters_and_memory_and_trains_nothing(tmp_path: Path) -> None:
    result = run_cli(
        "archlab.train", "plan=true", "model=transformer", "trainer=fsdp", "trainer.devices=4",
        "plan_memory_gb=0.01", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for line in ("parameters", "weights", "gradients", "optimizer state", "activations",
                 "total", "processes=4", "WARNING: this will not fit"):  # fmt: skip
        assert line in out, out
    assert list(tmp_path.iterdir()) == []  # no run directory, no checkpoint


# ---------------------------------------------------------------- building blocks, in-process
def test_two_ranks_together_see_the_single_process_batches() -> None:
    from archlab.data.batches import DistributedEpochShuffle, EpochShuffle

    data, batch = list(range(100)), 10
    for epoch in (0, 3):
        single = EpochShuffle(data, seed=7)
        single.set_epoch(epoch)
        order = list(single)
        ranks = []
        for rank in (0, 1):
            sampler = DistributedEpochShuffle(data, seed=7, num_replicas=2, rank=rank)
            sampler.set_epoch(epoch)
            ranks.append(list(sampler))
        for step in range(len(data) // batch):
            half = slice(step * batch // 2, (step + 1) * batch // 2)
            together = sorted(ranks[0][half] + ranks[1][half])
            assert together == sorted(order[step * batch : (step + 1) * batch])


def _compose(*overrides: str, hydra: bool = True):
    from hydra import compose, initialize_config_dir

    from archlab.config.paths import config_dir
    from archlab.config.run_names import register_resolvers as register_name_resolvers
    from archlab.distributed.slurm import register_resolvers

    register_name_resolvers()
    register_resolvers()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


def _sbatch(*overrides: str) -> str:
    """The sbatch file submitit writes for `archlab-train -m hydra/launcher=slurm ...`:
    the launcher config as Hydra resolves it, mapped to sbatch options by submitit's own
    tables and rendered by submitit's own writer (no cluster needed)."""
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf
    from submitit.slurm.slurm import SlurmExecutor, _make_sbatch_string

    cfg = _compose("hydra/launcher=slurm", "hydra.sweep.dir=/sweeps/x", *overrides)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    folder = launcher.pop("submitit_folder")
    for key in ("_target_", "max_num_timeout", "array_parallelism"):
        launcher.pop(key)
    generic = set(OmegaConf.structured(BaseQueueConf).keys())
    renamed = SlurmExecutor._equivalence_dict()
    params = {renamed.get(k, k) if k in generic else k: v for k, v in launcher.items()}
    params = {k: v for k, v in params.items() if v is not None}
    return _make_sbatch_string(command="python -m submitit.core._submit x", folder=folder, **params)


def test_slurm_launcher_shapes_a_two_node_ddp_job() -> None:
    sbatch = _sbatch("trainer=ddp", "trainer.num_nodes=2", "trainer.accelerator=gpu",
                     "trainer.devices=4", "hydra.launcher.partition=gpu")  # fmt: skip
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --partition=gpu", "#SBATCH --signal=USR2@120",
                 "#SBATCH --time=1440"):  # fmt: skip
        assert line in sbatch, sbatch
    assert "srun" in sbatch


def test_slurm_launcher_gives_a_default_job_one_task_and_one_gpu() -> None:
    sbatch = _sbatch()
    for line in ("#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=1"):
        assert line in sbatch, sbatch


def test_slurm_launcher_asks_no_gpu_for_a_cpu_trainer() -> None:
    sbatch = _sbatch("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=3")
    assert "#SBATCH --ntasks-per-node=3" in sbatch and "#SBATCH --nodes=1" in sbatch
    assert "gpus-per-node" not in sbatch


def test_ranks_started_by_srun_or_torchrun_do_not_launch_again(monkeypatch) -> None:
    from omegaconf import OmegaConf

    from archlab.distributed.launch import needs_launch

    trainer = OmegaConf.create({"strategy": "ddp", "devices": 2, "accelerator": "cpu",
                                "num_nodes": 2})  # fmt: skip
    for key in ("SLURM_NTASKS", "SLURM_JOB_NAME", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(Exception, match="torchrun --nnodes"):
        needs_launch(trainer)  # two nodes, but nothing started this process on them
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_JOB_NAME", "archlab")
    assert not needs_launch(trainer)  # srun started the ranks
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "1")
    with pytest.raises(Exception, match="--ntasks-per-node=2"):
        needs_launch(trainer)  # srun started fewer ranks than the trainer needs
    monkeypatch.delenv("SLURM_NTASKS")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not needs_launch(trainer)  # torchrun started the ranks
    monkeypatch.delenv("LOCAL_RANK")
    assert needs_launch(OmegaConf.merge(trainer, {"num_nodes": 1}))


def test_fsdp_options_become_a_strategy_that_wraps_transformer_blocks() -> None:
    from pytorch_lightning.strategies import FSDPStrategy

    from archlab.config.validate import validate
    from archlab.distributed.strategies import trainer_arguments
    from archlab.models.transformer import Block

    cfg = _compose("trainer=fsdp", "trainer.fsdp.activation_checkpointing=true", hydra=False)
    arguments = trainer_arguments(validate(cfg).trainer)
    strategy = arguments["strategy"]
    assert isinstance(strategy, FSDPStrategy)
    assert "fsdp" not in arguments and "deepspeed" not in arguments
    assert strategy.kwargs["auto_wrap_policy"]._module_classes == {Block}
    assert strategy._activation_checkpointing_kwargs
    assert arguments["precision"] == "bf16-mixed" and arguments["gradient_clip_val"] == 1.0


def test_throughput_bench_runs_its_tiny_shape(tmp_path: Path) -> None:
    """`make bench-gpu`'s script on the CPU path (the full GPT-2-small shape needs CUDA)."""
    out = tmp_path / "throughput.json"
    result = run_cli("bench.throughput", "--tiny", "--steps", "3", "--warmup", "1",
                     "--output", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["tokens_per_s"] > 0 and report["mfu"] > 0
    assert report["shape"]["layers"] == 2 and "MFU" in result.stdout


def test_plan_state_is_what_a_training_step_holds_sharded_as_each_strategy_does() -> None:
    from archlab.config.validate import validate
    from archlab.run.plan import state_bytes
    from archlab.tasks.optim import make_optimizer, param_groups

    def parts(*overrides: str) -> dict[str, float]:
        return state_bytes(params, validate(_compose(*overrides, hydra=False)))

    def held(optimizer_name: str) -> dict[str, int]:
        """What one real optimizer step of a small model leaves in memory."""
        model = torch.nn.Sequential(
            torch.nn.Linear(10, 20), torch.nn.ReLU(), torch.nn.Linear(20, 5)
        )
        cfg = validate(
            _compose("trainer=cpu", f"task.optimizer.name={optimizer_name}", hydra=False)
        )
        opt = cfg.task.optimizer
        optimizer = make_optimizer(param_groups(model.named_parameters(), opt), opt)
        model(torch.randn(3, 10)).sum().backward()
        optimizer.step()
        state = [t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
        return {
            "weights": sum(p.nbytes for p in model.parameters()),
            "gradients": sum(p.grad.nbytes for p in model.parameters()),
            "optimizer state": sum(t.nbytes for t in state if t.dim() > 0),  # not the step count
        }

    params = 10 * 20 + 20 + 20 * 5 + 5
    single = parts("trainer=cpu")
    assert single == held("adamw")
    assert parts("trainer=cpu", "task.optimizer.name=sgd") == held("sgd")
    # Sharding divides what one process holds by the processes that share it.
    ddp = parts("trainer=ddp", "trainer.devices=4")
    assert (
        ddp["weights"] == single["weights"] and ddp["DDP gradient buckets"] == single["gradients"]
    )
    fsdp = parts("trainer=fsdp", "trainer.devices=4", "trainer.num_nodes=2")
    assert fsdp["weights"] == single["weights"] / 8 and fsdp["gradients"] == single["gradients"] / 8
    assert fsdp["optimizer state"] == single["optimizer state"] / 8
    assert fsdp["16-bit weight casts"] == single["weights"] / 2  # all weights, gathered in bf16
    grad_op = parts(
        "trainer=fsdp", "trainer.devices=4", "trainer.fsdp.sharding_strategy=SHARD_GRAD_OP"
    )
    assert (
        grad_op["weights"] == single["weights"] and grad_op["gradients"] == single["gradients"] / 4
    )
    zero2 = parts("trainer=deepspeed", "trainer.devices=4", "trainer.precision=bf16-true")
    assert zero2["weights"] == single["weights"] / 2  # bf16: half of fp32's bytes, not sharded
    assert zero2["gradients"] == single["gradients"] / 2 / 4
    assert zero2["optimizer state"] == single["optimizer state"] / 2 / 4
