"""archlab: compose model x data x trainer from config and compare architectures."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("archlab")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
