"""`archlab-report SWEEP_DIR`: compare the jobs of a sweep (see `archlab.records.report`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from archlab.errors import ArchlabError, exit_with
from archlab.records.report import MODES, write_report


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="archlab-report",
        description="Compare the jobs of an `archlab-train -m` sweep: writes summary.csv, "
        "summary.md and summary.png into the sweep directory and prints the table.",
    )
    parser.add_argument("sweep_dir", type=Path, help="the multirun directory (one folder per job)")
    parser.add_argument("--metric", help="metric to rank by (default: the checkpoint monitor)")
    parser.add_argument("--mode", choices=MODES, help="whether higher (max) or lower is better")
    args = parser.parse_args()
    try:
        table = write_report(args.sweep_dir, args.metric, args.mode)
    except ArchlabError as error:
        exit_with("archlab-report", error)
    print(table, end="")


if __name__ == "__main__":
    main()
