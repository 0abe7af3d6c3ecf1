"""Errors a user can cause. Entry points print their message alone (no traceback) and exit 2."""

import sys
from typing import NoReturn


class ArchlabError(Exception):
    """Base class: the message names the key, file or value at fault and how to fix it."""


class ConfigError(ArchlabError):
    """A config key is unknown, mistyped, missing or incompatible with another."""


class DataError(ArchlabError):
    """A data file is missing, unreadable or malformed."""


class CheckpointError(ArchlabError):
    """A checkpoint or run directory cannot be used."""


def exit_with(prog: str, error: ArchlabError) -> NoReturn:
    """End an entry point on a user's mistake: one `<prog>: error: <message>` line, status 2."""
    print(f"{prog}: error: {error}", file=sys.stderr)
    raise SystemExit(2) from None
