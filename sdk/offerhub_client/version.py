"""The client's version (sent in its User-Agent)."""

__all__ = ["VERSION"]

VERSION = "0.1.0"
