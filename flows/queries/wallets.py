"""Statements of ``wallets``: users' invisible Stellar wallets (sealed seeds, activation flags)."""

from datetime import datetime
from typing import Final, LiteralString

import asyncpg
import msgspec

__all__ = ["Wallet", "get_wallet", "get_wallet_by_user", "insert_wallet", "mark_wallet_active"]


class Wallet(msgspec.Struct, frozen=True, kw_only=True):
    """A ``wallets`` row (the sealed secret is ciphertext, safe to hold)."""

    marketplace_id: str
    id: str
    user_id: str
    public_key: str
    sealed_secret: str
    key_version: int
    is_active: bool
    funded: bool
    trustline_ready: bool
    created_at: datetime
    updated_at: datetime


def _wallet(row: asyncpg.Record | None) -> Wallet | None:
    return None if row is None else msgspec.convert(dict(row), type=Wallet)


# Creates a wallet (wallets_user_key: one per user and marketplace).
INSERT_WALLET: Final[LiteralString] = """
INSERT INTO wallets (marketplace_id, id, user_id, public_key, sealed_secret, key_version)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *
"""

# One wallet by primary key.
GET_WALLET: Final[LiteralString] = """
SELECT * FROM wallets WHERE marketplace_id = $1 AND id = $2
"""

# Marks a wallet funded, with its USDC trustline, and active.
MARK_WALLET_ACTIVE: Final[LiteralString] = """
UPDATE wallets
SET funded = true, trustline_ready = true, is_active = true, updated_at = now()
WHERE marketplace_id = $1 AND id = $2
RETURNING *
"""


async def insert_wallet(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    wallet_id: str,
    user_id: str,
    public_key: str,
    sealed_secret: str,
    key_version: int,
) -> Wallet:
    """Insert a wallet, inactive until its activation operation succeeds."""
    row = await conn.fetchrow(
        INSERT_WALLET, marketplace_id, wallet_id, user_id, public_key, sealed_secret, key_version
    )
    wallet = _wallet(row)
    assert wallet is not None
    return wallet


async def get_wallet(
    conn: asyncpg.Connection, marketplace_id: str, wallet_id: str
) -> Wallet | None:
    """One wallet, or ``None``."""
    return _wallet(await conn.fetchrow(GET_WALLET, marketplace_id, wallet_id))


async def mark_wallet_active(
    conn: asyncpg.Connection, marketplace_id: str, wallet_id: str
) -> Wallet | None:
    """Mark a wallet funded, trustline-ready and active."""
    return _wallet(await conn.fetchrow(MARK_WALLET_ACTIVE, marketplace_id, wallet_id))


# The wallet of a user (wallets_user_key: at most one per user and marketplace).
GET_WALLET_BY_USER: Final[LiteralString] = """
SELECT * FROM wallets WHERE marketplace_id = $1 AND user_id = $2
"""


async def get_wallet_by_user(
    conn: asyncpg.Connection, marketplace_id: str, user_id: str
) -> Wallet | None:
    """The user's wallet, or ``None`` when it has none."""
    return _wallet(await conn.fetchrow(GET_WALLET_BY_USER, marketplace_id, user_id))
