"""What the audit log may keep of a value (api.md 3.11): no secrets, masked emails, plain JSON.

:func:`redact` turns any before/after summary into JSON-ready builtins that survive a round trip
through ``jsonb`` unchanged (the hash chain is recomputed from what the database gives back):

* keys named like a secret are dropped (``secret``, ``token``, ``signature``, ``authorization``,
  ``password``, ``seed``, ``salt``, ``private``, a name ending in ``key`` such as ``api_key``;
  ``public_key``, ``idempotency_key`` and ``key_id`` are kept: they are not secrets);
* secrets inside strings are replaced by ``[REDACTED]`` (API key text ``ohk_...``, Stellar
  secret seeds ``S...``, webhook secrets ``whsec_...``, ``Bearer`` credentials) and emails are
  masked to ``j***@example.com``;
* floats, huge integers, decimals and unknown objects become strings, datetimes RFC 3339 text,
  Structs and enums their builtin values; bytes are never kept.
"""

import datetime
import enum
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

import msgspec

from common.times import format_time

__all__ = ["REDACTED", "is_secret_name", "mask_emails", "redact"]

REDACTED: Final = "[REDACTED]"
_SECRET_WORDS: Final = frozenset(
    {
        "authorization",
        "ciphertext",
        "cookie",
        "credential",
        "credentials",
        "mnemonic",
        "passphrase",
        "password",
        "private",
        "salt",
        "sealed",
        "secret",
        "secrets",
        "seed",
        "signature",
        "signatures",
        "token",
        "tokens",
    }
)
# Names ending in "key" that hold no secret.
_PUBLIC_NAMES: Final = frozenset({"public_key", "idempotency_key"})
_INT_MAX: Final = 2**63 - 1
# Left as they are by to_builtins, so that redact() decides (bytes are never kept).
_KEPT_TYPES: Final = (bytes, bytearray, memoryview, datetime.datetime, datetime.date, Decimal)
_CAMEL_BOUNDARY: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NAME_PARTS: Final = re.compile(r"[^a-z0-9]+")
_EMAIL: Final = re.compile(
    r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"
)
# Secrets that may hide inside free text (a reason, an error message, a provider payload).
_SECRET_TEXT: Final = (
    re.compile(r"ohk_[a-z]+_key_[0-9A-Za-z]{32}_[0-9a-f]+"),  # an API key (api.md 1.2)
    re.compile(r"\bS[A-Z2-7]{55}\b"),  # a Stellar secret seed
    re.compile(r"whsec_[A-Za-z0-9+/=_-]+"),  # a webhook signing secret
    re.compile(r"(?i)\bbearer\s+[^\s\"',;]+"),  # an Authorization credential
)


def is_secret_name(name: str) -> bool:
    """Whether a field called ``name`` may hold a secret (and is dropped from summaries)."""
    snake = _CAMEL_BOUNDARY.sub("_", name).lower()
    if snake in _PUBLIC_NAMES:
        return False
    parts = [part for part in _NAME_PARTS.split(snake) if part]
    if any(part in _SECRET_WORDS for part in parts):
        return True
    return bool(parts) and parts[-1] in ("key", "keys", "apikey")


def mask_emails(text: str) -> str:
    """``jane@example.com`` -> ``j***@example.com``, wherever an address appears in ``text``."""
    return _EMAIL.sub(r"\1***@\2", text)


def _redact_text(text: str) -> str:
    for pattern in _SECRET_TEXT:
        text = pattern.sub(REDACTED, text)
    # jsonb cannot store U+0000; the replacement keeps the text's shape visible.
    return mask_emails(text).replace("\x00", "\ufffd")


def _redact_mapping(value: Mapping[Any, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for name, item in value.items():
        key = _redact_text(str(name))
        if not is_secret_name(key):
            kept[key] = redact(item)
    return kept


def redact(value: Any) -> Any:
    """``value`` as JSON builtins with secrets removed and emails masked (see the module doc)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, int) and not isinstance(value, enum.Enum):
        return value if -_INT_MAX <= value <= _INT_MAX else str(value)
    if isinstance(value, float | Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return redact(value.value)
    if isinstance(value, datetime.datetime):
        return format_time(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return REDACTED
    if isinstance(value, msgspec.Struct):
        return redact(msgspec.to_builtins(value, builtin_types=_KEPT_TYPES))
    if isinstance(value, Mapping):
        return _redact_mapping(value)
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((redact(item) for item in value), key=str)
    return _redact_text(str(value))
