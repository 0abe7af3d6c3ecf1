"""One rank of a job launched by `archlab.launch`: `python -m archlab.rank_entry <folder>
<run_dir>`, started by torchrun. Reads the job's validated config from `<folder>` (never the
command line, so no rank re-parses a sweep) and trains as one process of the group.

A user's mistake or a signal is reported to the launching job through files in `<folder>`,
so the job ends with the rank's own message and exit status.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

from archlab.config.validate import validate
from archlab.errors import ArchlabError
from archlab.launch import CONFIG_FILE, ERROR_FILE, HYDRA_FILE, STOPPED_FILE
from archlab.preemption import Preempted


def _report(path: Path, message: str) -> None:
    """First rank to fail writes the message; the others would only repeat it."""
    try:
        with open(path, "x") as f:
            f.write(message)
    except FileExistsError:
        pass


def _restore_hydra_config(folder: Path) -> None:
    """The launching job's Hydra config, so rank 0 records `.hydra/` as a plain run does."""
    path = folder / HYDRA_FILE
    if path.is_file():
        from hydra.conf import HydraConf
        from hydra.core.hydra_config import HydraConfig

        hydra = OmegaConf.structured(HydraConf)
        OmegaConf.set_struct(hydra, False)  # the launcher plugins' keys are not in HydraConf
        hydra = OmegaConf.merge(hydra, OmegaConf.load(path))
        HydraConfig.instance().set_config(OmegaConf.create({"hydra": hydra}))


def main() -> None:
    folder, run_dir = Path(sys.argv[1]), Path(sys.argv[2])
    from archlab.train import train

    try:
        _restore_hydra_config(folder)
        cfg = validate(OmegaConf.load(folder / CONFIG_FILE))
        train(cfg, run_dir)
    except ArchlabError as error:
        _report(folder / ERROR_FILE, str(error))
        raise SystemExit(2) from None
    except Preempted as stop:
        if os.environ.get("RANK", "0") == "0":
            _report(folder / STOPPED_FILE, str(stop))
        raise SystemExit(stop.exit_status) from None


if __name__ == "__main__":
    main()
