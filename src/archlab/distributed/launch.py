"""One job, several processes: a run whose strategy needs several processes on this machine
starts them with torchrun on a Hydra-free entry point (`archlab.cli.rank_entry`).

Lightning's own DDP launcher re-runs `sys.argv` in every child, which inside a Hydra multirun
starts a new sweep per child. Here the job writes its validated config to a file and torchrun
(`torch.distributed.run`, in this process) starts one rank per device on that file; the ranks
see torchrun's environment, so Lightning does not launch again. Under SLURM the ranks come from
srun (one task per device) and under an outer torchrun they already exist: then the job trains
itself as one of them.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from lightning_fabric.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, OmegaConf
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import parse_args, run

from archlab.checkpointing.preemption import Preempted
from archlab.config.job import JobContext
from archlab.distributed.strategies import processes_per_node
from archlab.errors import ArchlabError, ConfigError
from archlab.records.run_record import ERROR_FILE, METRICS_FILE, scalar_metrics

STOPPED_FILE = "stopped.txt"
CONFIG_FILE = "config.yaml"
HYDRA_FILE = "hydra.yaml"


class RankError(ArchlabError):
    """A rank stopped on a user's mistake; the message is the rank's own."""


class RanksStopped(Preempted):
    """The ranks stopped on a signal after saving their checkpoint; rank 0's message."""

    def __init__(self, message: str, status: int) -> None:
        Exception.__init__(self, message)
        self.signum = status - 128


def _inside_ranks(trainer: DictConfig) -> bool:
    """True when this process already is one rank of a launched group (torchrun or srun)."""
    if "LOCAL_RANK" in os.environ or "TORCHELASTIC_RUN_ID" in os.environ:
        return True
    if not SLURMEnvironment.detect():
        return False
    tasks, wanted = os.environ.get("SLURM_NTASKS_PER_NODE", ""), processes_per_node(trainer)
    if tasks.isdigit() and int(tasks) != wanted:
        raise ConfigError(
            f"Under SLURM every rank is a task started by srun, but this job has "
            f"--ntasks-per-node={tasks} and the trainer needs {wanted} process(es) per node "
            f"(trainer.devices={trainer.devices}): submit with --ntasks-per-node={wanted}, "
            "or use hydra/launcher=slurm, which sets it."
        )
    return True


def needs_launch(trainer: DictConfig) -> bool:
    """Whether this job must start its own ranks (and not train in this process)."""
    if _inside_ranks(trainer):
        return False
    if trainer.num_nodes > 1:
        raise ConfigError(
            f"trainer.num_nodes={trainer.num_nodes}: start archlab-train on every machine with "
            "torchrun --nnodes (see README, 'Several machines'), or submit it with "
            "hydra/launcher=slurm."
        )
    return processes_per_node(trainer) > 1


def _torchrun(nproc: int, folder: Path, run_dir: Path) -> None:
    """`torchrun --standalone --nproc-per-node <nproc> -m archlab.cli.rank_entry ...`, in-process
    so that a rank's failure surfaces as an exception here rather than torchrun's traceback."""
    args = parse_args(
        [
            "--standalone",
            f"--nproc-per-node={nproc}",
            "-m",
            "archlab.cli.rank_entry",
            str(folder),
            str(run_dir),
        ]
    )
    # torchrun's banners and its per-rank failure reports duplicate what the ranks print
    # (its modules' loggers carry their own levels, so each is quietened).
    names = [n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed")]
    loggers = [logging.getLogger(n) for n in names]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        run(args)
    finally:
        for logger, level in zip(loggers, previous, strict=True):
            logger.setLevel(level)


def launch_ranks(cfg: DictConfig, run_dir: Path, job: JobContext) -> dict[str, float]:
    """Train `cfg` in one process per device; returns rank 0's final metrics."""

    nproc = processes_per_node(cfg.trainer)
    with tempfile.TemporaryDirectory(prefix="archlab-ranks-") as tmp:
        folder = Path(tmp)
        (folder / CONFIG_FILE).write_text(OmegaConf.to_yaml(cfg))
        job.save(folder / HYDRA_FILE)
        try:
            _torchrun(nproc, folder, run_dir)
        except ChildFailedError as failed:
            error, stopped = folder / ERROR_FILE, folder / STOPPED_FILE
            if error.is_file():
                raise RankError(error.read_text().strip()) from None
            status = _first_exit_status(failed)
            if stopped.is_file():
                raise RanksStopped(stopped.read_text().strip(), status) from None
            raise RuntimeError(
                f"A training process failed (exit status {status}); its error is printed above."
            ) from None
        except SignalException as signalled:
            stopped = folder / STOPPED_FILE
            message = stopped.read_text().strip() if stopped.is_file() else "stopped by a signal"
            raise RanksStopped(message, 128 + int(signalled.sigval)) from None
    record = json.loads((run_dir / METRICS_FILE).read_text())
    return scalar_metrics(record)


def _first_exit_status(failed: object) -> int:
    failures = getattr(failed, "failures", {})
    return next((f.exitcode for f in failures.values()), 1)
