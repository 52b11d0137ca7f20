"""Prefixed identifiers: ``<prefix>`` followed by 32 characters of ``[0-9A-Za-z]``."""

import hashlib
import re
import secrets
from typing import Final

__all__ = ["ID_BODY_LENGTH", "derived_id", "is_valid_id", "new_id"]

ID_BODY_LENGTH: Final = 32
_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_PATTERN: Final = re.compile(r"[0-9A-Za-z]{32}")


def new_id(prefix: str) -> str:
    """Return a fresh random identifier such as ``trf_3kF...`` (190 bits of entropy)."""
    # One draw of 190 bits (< 62**32), written as 32 base-62 digits: no modulo bias, and one
    # system call instead of one per character.
    return prefix + _base62(secrets.randbits(190))


def derived_id(prefix: str, *parts: str) -> str:
    """Return an identifier derived deterministically from ``parts``.

    Used where a retry must reproduce the same id, for example the ledger transfer of an
    on-chain operation or the expiry of a pending transfer.
    """
    digest = int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest(), "big")
    return prefix + _base62(digest)


def _base62(number: int) -> str:
    """The 32 lowest base-62 digits of ``number``, most significant first."""
    digits = []
    for _ in range(ID_BODY_LENGTH):
        number, index = divmod(number, len(_ALPHABET))
        digits.append(_ALPHABET[index])
    return "".join(reversed(digits))


def is_valid_id(value: str, prefix: str) -> bool:
    """Tell whether ``value`` is ``prefix`` followed by 32 characters of ``[0-9A-Za-z]``."""
    return value.startswith(prefix) and bool(_BODY_PATTERN.fullmatch(value[len(prefix) :]))
