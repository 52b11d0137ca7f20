"""Offline key management for the CLI, and the first-start bootstrap of ``offerhub serve``.

These run on a database URL, outside the HTTP app; they share the key functions of
``api.api_keys`` with the routes, so a key made here is the same as one made over HTTP.
"""

from collections.abc import Sequence
from typing import Final, Literal

import asyncpg

from api.api_keys import ALL_SCOPES, IssuedKey, issue_key, revoke_key
from api.queries.api_keys import ApiKeyRow, find_api_key, list_all_api_keys
from api.queries.marketplaces import (
    MarketplaceRow,
    any_marketplace,
    get_marketplace_by_name,
    insert_marketplace,
)
from api.schemas.marketplaces import DEFAULT_PLATFORM_FEE_BPS
from common.ids import new_id

__all__ = [
    "BOOTSTRAP_MARKETPLACE",
    "bootstrap_marketplace",
    "create_key",
    "list_keys",
    "revoke_key_anywhere",
]

BOOTSTRAP_MARKETPLACE: Final = "default"
# Serialises first starts of several processes on one database.
_BOOTSTRAP_LOCK_KEY: Final = 0x0FFE_B007


async def _marketplace_named(conn: asyncpg.Connection, name: str) -> MarketplaceRow:
    created = await insert_marketplace(
        conn,
        marketplace_id=new_id("mkt_"),
        name=name,
        platform_fee_bps=DEFAULT_PLATFORM_FEE_BPS,
    )
    if created is not None:
        return created
    existing = await get_marketplace_by_name(conn, name)
    assert existing is not None
    return existing


async def create_key(
    dsn: str,
    *,
    marketplace: str,
    scopes: Sequence[str],
    env: Literal["live", "test"],
    name: str = "cli",
) -> tuple[MarketplaceRow, IssuedKey]:
    """Issue a key in the marketplace named ``marketplace``, creating it if missing."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            row = await _marketplace_named(conn, marketplace)
            issued = await issue_key(conn, marketplace_id=row.id, name=name, scopes=scopes, env=env)
            return row, issued
    finally:
        await conn.close()


async def list_keys(dsn: str) -> list[ApiKeyRow]:
    """Every key of every marketplace (no secrets exist to show)."""
    conn = await asyncpg.connect(dsn)
    try:
        return await list_all_api_keys(conn)
    finally:
        await conn.close()


async def revoke_key_anywhere(dsn: str, key_id: str) -> ApiKeyRow | None:
    """Revoke a key of any marketplace; ``None`` when no key has this id."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            found = await find_api_key(conn, key_id)
            if found is None:
                return None
            return await revoke_key(conn, found.marketplace_id, key_id)
    finally:
        await conn.close()


async def bootstrap_marketplace(
    dsn: str, env: Literal["live", "test"]
) -> tuple[MarketplaceRow, IssuedKey] | None:
    """On a database without marketplaces, create one with an all-scopes key; else ``None``."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _BOOTSTRAP_LOCK_KEY)
            if await any_marketplace(conn):
                return None
            row = await _marketplace_named(conn, BOOTSTRAP_MARKETPLACE)
            issued = await issue_key(
                conn, marketplace_id=row.id, name="bootstrap", scopes=ALL_SCOPES, env=env
            )
            return row, issued
    finally:
        await conn.close()
