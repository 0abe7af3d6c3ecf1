"""`archlab-report DIR [DIR ...]`: compare the jobs of sweeps (see `archlab.records.report`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from archlab.errors import ArchlabError, exit_with
from archlab.records.report import MODES, SEED_KEYS, write_report


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="archlab-report",
        description="Compare the jobs of `archlab-train -m` sweeps: jobs that differ only in "
        "their seed are aggregated (mean, sd, 95% interval), ranked, set against their cost "
        "and drawn. Writes summary.md, summary.csv and PNG pictures and prints summary.md.",
    )
    parser.add_argument(
        "dirs",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="a multirun directory (one folder per job) or a run directory; several are "
        "compared together (then name the output with --out)",
    )
    parser.add_argument("--metric", help="metric to rank by (default: the checkpoint monitor)")
    parser.add_argument("--mode", choices=MODES, help="whether higher (max) or lower is better")
    parser.add_argument(
        "--out", type=Path, help="where the report goes (default: the one DIR given)"
    )
    parser.add_argument(
        "--across",
        nargs="+",
        choices=SEED_KEYS,
        default=["seed"],
        help="settings whose values are aggregated over (default: seed; add data.split_seed "
        "to count other splits as repeats too)",
    )
    args = parser.parse_args()
    try:
        text = write_report(args.dirs, args.metric, args.mode, args.out, args.across)
    except ArchlabError as error:
        exit_with("archlab-report", error)
    print(text, end="")


if __name__ == "__main__":
    main()
