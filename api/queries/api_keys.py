"""Statements of ``api_keys``: hashed credentials with scopes, per marketplace."""

from datetime import datetime
from typing import Final, LiteralString

import asyncpg
import msgspec

__all__ = [
    "ApiKeyRow",
    "find_api_key",
    "get_api_key",
    "insert_api_key",
    "list_all_api_keys",
    "list_api_keys",
    "revoke_api_key",
    "touch_api_key",
]


class ApiKeyRow(msgspec.Struct, frozen=True, kw_only=True):
    """An ``api_keys`` row (salt and hash only; the secret is never stored)."""

    marketplace_id: str
    id: str
    name: str
    scopes: list[str]
    salt: bytes
    hash: bytes
    status: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _row(record: asyncpg.Record | None) -> ApiKeyRow | None:
    return None if record is None else msgspec.convert(dict(record), type=ApiKeyRow)


def _rows(records: list[asyncpg.Record]) -> list[ApiKeyRow]:
    return [msgspec.convert(dict(record), type=ApiKeyRow) for record in records]


INSERT_API_KEY: Final[LiteralString] = """
INSERT INTO api_keys (marketplace_id, id, name, scopes, salt, hash)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *
"""

# Authentication: the key text carries the id, not the marketplace (api_keys_by_id).
FIND_API_KEY: Final[LiteralString] = "SELECT * FROM api_keys WHERE id = $1"

GET_API_KEY: Final[LiteralString] = """
SELECT * FROM api_keys WHERE marketplace_id = $1 AND id = $2
"""

# Newest first within a marketplace, optionally filtered by status, after a keyset position.
LIST_API_KEYS: Final[LiteralString] = """
SELECT * FROM api_keys
WHERE marketplace_id = $1
  AND ($2::text[] IS NULL OR status = ANY($2))
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
ORDER BY created_at DESC, id DESC
LIMIT $5
"""

# Every key of every marketplace, for the offline CLI listing.
LIST_ALL_API_KEYS: Final[LiteralString] = """
SELECT * FROM api_keys ORDER BY marketplace_id, created_at, id
"""

# Revokes an active key; nothing when it is unknown or already revoked.
REVOKE_API_KEY: Final[LiteralString] = """
UPDATE api_keys SET status = 'REVOKED', revoked_at = now()
WHERE marketplace_id = $1 AND id = $2 AND status = 'ACTIVE'
RETURNING *
"""

# Records use at most once a minute, so steady traffic does not write on every request.
TOUCH_API_KEY: Final[LiteralString] = """
UPDATE api_keys SET last_used_at = now()
WHERE marketplace_id = $1 AND id = $2
  AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
"""


async def insert_api_key(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    key_id: str,
    name: str,
    scopes: list[str],
    salt: bytes,
    secret_hash: bytes,
) -> ApiKeyRow:
    """Insert an active key."""
    row = _row(
        await conn.fetchrow(INSERT_API_KEY, marketplace_id, key_id, name, scopes, salt, secret_hash)
    )
    assert row is not None
    return row


async def find_api_key(conn: asyncpg.Connection, key_id: str) -> ApiKeyRow | None:
    """The key with this id in any marketplace, or ``None``."""
    return _row(await conn.fetchrow(FIND_API_KEY, key_id))


async def get_api_key(
    conn: asyncpg.Connection, marketplace_id: str, key_id: str
) -> ApiKeyRow | None:
    """The key with this id in this marketplace, or ``None``."""
    return _row(await conn.fetchrow(GET_API_KEY, marketplace_id, key_id))


async def list_api_keys(
    conn: asyncpg.Connection,
    marketplace_id: str,
    *,
    statuses: list[str] | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[ApiKeyRow]:
    """Up to ``limit`` keys of a marketplace, newest first, strictly after ``after``."""
    after_created, after_id = after if after is not None else (None, None)
    return _rows(
        await conn.fetch(LIST_API_KEYS, marketplace_id, statuses, after_created, after_id, limit)
    )


async def list_all_api_keys(conn: asyncpg.Connection) -> list[ApiKeyRow]:
    """Every key, grouped by marketplace, oldest first."""
    return _rows(await conn.fetch(LIST_ALL_API_KEYS))


async def revoke_api_key(
    conn: asyncpg.Connection, marketplace_id: str, key_id: str
) -> ApiKeyRow | None:
    """Revoke an active key; ``None`` when it is unknown or was already revoked."""
    return _row(await conn.fetchrow(REVOKE_API_KEY, marketplace_id, key_id))


async def touch_api_key(conn: asyncpg.Connection, marketplace_id: str, key_id: str) -> None:
    """Set ``last_used_at`` to now unless it was set less than a minute ago."""
    await conn.execute(TOUCH_API_KEY, marketplace_id, key_id)
