"""Where archlab's own config tree lives, installed or in a source checkout."""

from __future__ import annotations

from pathlib import Path


def config_dir() -> Path:
    """`archlab/conf` inside a wheel, else the repository's top-level `conf/`."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "conf"
    return packaged if packaged.is_dir() else package.parents[1] / "conf"
