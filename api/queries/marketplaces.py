"""Statements of ``marketplaces``: the tenants."""

from datetime import datetime
from typing import Final, LiteralString

import asyncpg
import msgspec

__all__ = [
    "MarketplaceRow",
    "any_marketplace",
    "get_marketplace",
    "get_marketplace_by_name",
    "insert_marketplace",
    "list_marketplaces",
]


class MarketplaceRow(msgspec.Struct, frozen=True, kw_only=True):
    """A ``marketplaces`` row."""

    id: str
    name: str
    platform_fee_bps: int
    created_at: datetime
    updated_at: datetime


def _row(record: asyncpg.Record | None) -> MarketplaceRow | None:
    return None if record is None else msgspec.convert(dict(record), type=MarketplaceRow)


# Creates a marketplace; nothing when the name is taken (marketplaces_name_key).
INSERT_MARKETPLACE: Final[LiteralString] = """
INSERT INTO marketplaces (id, name, platform_fee_bps) VALUES ($1, $2, $3)
ON CONFLICT (name) DO NOTHING
RETURNING *
"""

GET_MARKETPLACE: Final[LiteralString] = "SELECT * FROM marketplaces WHERE id = $1"

GET_MARKETPLACE_BY_NAME: Final[LiteralString] = "SELECT * FROM marketplaces WHERE name = $1"

ANY_MARKETPLACE: Final[LiteralString] = "SELECT EXISTS (SELECT 1 FROM marketplaces)"

# Newest first, after the keyset position ($1, $2) when given (marketplaces_by_created).
LIST_MARKETPLACES: Final[LiteralString] = """
SELECT * FROM marketplaces
WHERE $1::timestamptz IS NULL OR (created_at, id) < ($1, $2)
ORDER BY created_at DESC, id DESC
LIMIT $3
"""


async def insert_marketplace(
    conn: asyncpg.Connection, *, marketplace_id: str, name: str, platform_fee_bps: int
) -> MarketplaceRow | None:
    """Insert a marketplace; ``None`` when another one already has this name."""
    return _row(await conn.fetchrow(INSERT_MARKETPLACE, marketplace_id, name, platform_fee_bps))


async def get_marketplace(conn: asyncpg.Connection, marketplace_id: str) -> MarketplaceRow | None:
    """One marketplace by id, or ``None``."""
    return _row(await conn.fetchrow(GET_MARKETPLACE, marketplace_id))


async def get_marketplace_by_name(conn: asyncpg.Connection, name: str) -> MarketplaceRow | None:
    """One marketplace by its unique name, or ``None``."""
    return _row(await conn.fetchrow(GET_MARKETPLACE_BY_NAME, name))


async def any_marketplace(conn: asyncpg.Connection) -> bool:
    """Whether at least one marketplace exists."""
    return bool(await conn.fetchval(ANY_MARKETPLACE))


async def list_marketplaces(
    conn: asyncpg.Connection, *, after: tuple[datetime, str] | None, limit: int
) -> list[MarketplaceRow]:
    """Up to ``limit`` marketplaces, newest first, strictly after the keyset position ``after``."""
    after_created, after_id = after if after is not None else (None, None)
    records = await conn.fetch(LIST_MARKETPLACES, after_created, after_id, limit)
    return [msgspec.convert(dict(record), type=MarketplaceRow) for record in records]
