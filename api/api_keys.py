"""API keys (api.md 1.2): the key format, salted hashing, issuing and revoking.

A key reads ``ohk_<env>_<key_id>_<secret>``: ``env`` is ``live`` or ``test``, ``key_id`` is
``key_`` + 32 characters of ``[0-9A-Za-z]``, ``secret`` is 48 lowercase hex characters (24 random
bytes). Only ``SHA-256(salt || secret)`` is stored; the plaintext exists once, in the answer
that creates it.
"""

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from typing import Final, Literal

import asyncpg
import msgspec

from api.queries.api_keys import ApiKeyRow, get_api_key, insert_api_key, revoke_api_key
from common.errors import ApiKeyNotFound
from common.ids import new_id
from flows.audit import record_audit
from flows.transitions import SYSTEM, Actor

__all__ = [
    "ALL_SCOPES",
    "IssuedKey",
    "ParsedKey",
    "expand_scopes",
    "hash_secret",
    "issue_key",
    "parse_key",
    "revoke_key",
    "secret_matches",
]

ScopeName = Literal["read", "write", "support", "admin"]
ALL_SCOPES: Final[tuple[ScopeName, ...]] = ("read", "write", "support", "admin")
_KEY_PATTERN: Final = re.compile(r"ohk_(live|test)_(key_[0-9A-Za-z]{32})_([0-9a-f]{48})")
_SALT_BYTES: Final = 16
_SECRET_BYTES: Final = 24


class ParsedKey(msgspec.Struct, frozen=True):
    """The parts of a well-formed key."""

    env: str
    key_id: str
    secret: str


class IssuedKey(msgspec.Struct, frozen=True):
    """A freshly issued key: its row, and the plaintext to show once."""

    row: ApiKeyRow
    key: str


def parse_key(text: str) -> ParsedKey | None:
    """Split a key into env, id and secret; ``None`` when it is not of the key format."""
    match = _KEY_PATTERN.fullmatch(text)
    return None if match is None else ParsedKey(match[1], match[2], match[3])


def hash_secret(salt: bytes, secret: str) -> bytes:
    """``SHA-256(salt || secret)``, the only form in which a secret is stored."""
    return hashlib.sha256(salt + secret.encode()).digest()


def secret_matches(row: ApiKeyRow, secret: str) -> bool:
    """Compare a presented secret with the stored hash in constant time."""
    return hmac.compare_digest(hash_secret(row.salt, secret), row.hash)


def expand_scopes(scopes: Iterable[str]) -> list[str]:
    """The stored scope list: ``*`` means all four; canonical order, no duplicates."""
    wanted = set(scopes)
    if "*" in wanted:
        wanted = set(ALL_SCOPES)
    return [scope for scope in ALL_SCOPES if scope in wanted]


async def issue_key(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    name: str,
    scopes: Iterable[str],
    env: Literal["live", "test"],
    actor: Actor = SYSTEM,
) -> IssuedKey:
    """Create an active key in ``marketplace_id`` and return it with its plaintext.

    Audited ``API_KEY_CREATED`` as ``actor`` (``SYSTEM``: the CLI and the first-start bootstrap);
    the entry holds the key's id, name and scopes, never its text.
    """
    key_id = new_id("key_")
    secret = secrets.token_hex(_SECRET_BYTES)
    salt = secrets.token_bytes(_SALT_BYTES)
    row = await insert_api_key(
        conn,
        marketplace_id=marketplace_id,
        key_id=key_id,
        name=name,
        scopes=expand_scopes(scopes),
        salt=salt,
        secret_hash=hash_secret(salt, secret),
    )
    await _audit(conn, actor, "API_KEY_CREATED", row, before=None)
    return IssuedKey(row=row, key=f"ohk_{env}_{key_id}_{secret}")


async def _audit(
    conn: asyncpg.Connection, actor: Actor, action: str, row: ApiKeyRow, *, before: str | None
) -> None:
    await record_audit(
        conn,
        marketplace_id=row.marketplace_id,
        actor_type=actor.type,
        actor_id=actor.id,
        action=action,
        resource_type="api_key",
        resource_id=row.id,
        before=None if before is None else {"status": before},
        after={"name": row.name, "scopes": list(row.scopes), "status": row.status},
        request_id=actor.request_id,
    )


async def revoke_key(
    conn: asyncpg.Connection, marketplace_id: str, key_id: str, *, actor: Actor = SYSTEM
) -> ApiKeyRow:
    """Revoke a key of this marketplace; revoking twice returns the key unchanged.

    The revocation is audited ``API_KEY_REVOKED`` as ``actor`` (a repeat writes nothing).

    Raises:
        ApiKeyNotFound: no such key in this marketplace.
    """
    revoked = await revoke_api_key(conn, marketplace_id, key_id)
    if revoked is not None:
        await _audit(conn, actor, "API_KEY_REVOKED", revoked, before="ACTIVE")
        return revoked
    existing = await get_api_key(conn, marketplace_id, key_id)
    if existing is None:
        raise ApiKeyNotFound(key_id=key_id)
    return existing
