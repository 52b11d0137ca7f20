"""The installed version of the orchestrator."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["VERSION"]

try:
    VERSION = version("offerhub")
except PackageNotFoundError:  # running from a source tree that was not installed
    VERSION = "0.0.0"
