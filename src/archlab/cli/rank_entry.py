"""One rank of a job launched by `archlab.distributed.launch`:
`python -m archlab.cli.rank_entry <folder> <run_dir>`, started by torchrun. Reads the job's
validated config from `<folder>` (never the command line, so no rank re-parses a sweep) and
trains as one process of the group.

A user's mistake or a signal is reported to the launching job through files in `<folder>`,
so the job ends with the rank's own message and exit status.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

from archlab.checkpointing.preemption import Preempted
from archlab.config.job import JobContext
from archlab.config.validate import validate
from archlab.distributed.launch import CONFIG_FILE, ERROR_FILE, HYDRA_FILE, STOPPED_FILE
from archlab.errors import ArchlabError
from archlab.run.fit import fit


def _report(path: Path, message: str) -> None:
    """First rank to fail writes the message; the others would only repeat it."""
    try:
        with open(path, "x") as f:
            f.write(message)
    except FileExistsError:
        pass


def main() -> None:
    folder, run_dir = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        job = JobContext.load(folder / HYDRA_FILE, run_dir)
        cfg = validate(OmegaConf.load(folder / CONFIG_FILE))
        fit(cfg, run_dir, job)
    except ArchlabError as error:
        _report(folder / ERROR_FILE, str(error))
        raise SystemExit(2) from None
    except Preempted as stop:
        if os.environ.get("RANK", "0") == "0":
            _report(folder / STOPPED_FILE, str(stop))
        raise SystemExit(stop.exit_status) from None


if __name__ == "__main__":
    main()
