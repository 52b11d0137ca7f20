"""Statements of the deposit monitor: ``deposit_cursors`` (where each wallet's scan stands) and
``deposits`` (each incoming USDC payment credited once).
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Final, Literal, LiteralString

import asyncpg
import msgspec

__all__ = [
    "Deposit",
    "DepositRow",
    "PollState",
    "WalletScan",
    "claim_wallets",
    "database_now",
    "ensure_cursor",
    "get_deposit_by_operation",
    "insert_deposits",
    "lock_cursor",
    "open_missing_cursors",
    "owned_transactions",
    "release_wallets",
    "set_cursor",
]


# How a wallet's poll ended: read to the end, pages left, or the read failed.
PollState = Literal["done", "more", "failed"]


class WalletScan(msgspec.Struct, frozen=True, kw_only=True):
    """An active wallet claimed for one poll, with its stored cursor."""

    marketplace_id: str
    wallet_id: str
    user_id: str
    public_key: str
    paging_token: str | None


class DepositRow(msgspec.Struct, frozen=True, kw_only=True):
    """A deposit to insert (``deposits`` columns, minus the defaults)."""

    marketplace_id: str
    id: str
    user_id: str
    wallet_id: str
    operation_id: str
    operation_type: str
    tx_hash: str
    from_address: str | None
    amount_minor: int
    asset_code: str
    asset_issuer: str
    transfer_id: str
    paging_token: str
    source: str
    occurred_at: datetime


class Deposit(DepositRow, frozen=True, kw_only=True):
    """A ``deposits`` row."""

    credited_at: datetime


# Opens a cursor (from the account's first operation) for every active wallet without one.
# The anti-join walks wallets once (deposit_cursors_pkey); cheap next to a pass of HTTP reads.
OPEN_MISSING_CURSORS: Final[LiteralString] = """
INSERT INTO deposit_cursors (marketplace_id, wallet_id)
SELECT w.marketplace_id, w.id FROM wallets AS w
WHERE w.is_active AND NOT EXISTS (
    SELECT 1 FROM deposit_cursors AS c
    WHERE c.marketplace_id = w.marketplace_id AND c.wallet_id = w.id
)
ON CONFLICT ON CONSTRAINT deposit_cursors_pkey DO NOTHING
"""

DATABASE_NOW: Final[LiteralString] = "SELECT now()"

# Leases up to $2 active wallets not polled since $1 and not leased by another monitor, least
# recently polled first (deposit_cursors_by_polled). SKIP LOCKED: concurrent monitors split
# the pass instead of queueing behind each other.
CLAIM_WALLETS: Final[LiteralString] = """
UPDATE deposit_cursors AS c
SET leased_until = now() + make_interval(secs => $3)
FROM (
    SELECT d.marketplace_id, d.wallet_id, w.user_id, w.public_key
    FROM deposit_cursors AS d
    JOIN wallets AS w ON w.marketplace_id = d.marketplace_id AND w.id = d.wallet_id
    WHERE w.is_active
        AND (d.polled_at IS NULL OR d.polled_at < $1)
        AND (d.leased_until IS NULL OR d.leased_until < now())
    ORDER BY d.polled_at NULLS FIRST, d.marketplace_id, d.wallet_id
    LIMIT $2
    FOR UPDATE OF d SKIP LOCKED
) AS claimed
WHERE c.marketplace_id = claimed.marketplace_id AND c.wallet_id = claimed.wallet_id
RETURNING c.marketplace_id, c.wallet_id, claimed.user_id, claimed.public_key, c.paging_token
"""

# Ends wallets' polls. 'done': stamped polled, lease dropped. 'more' (pages left): lease
# dropped, so this pass claims it again and reads on. 'failed': kept off for $4 seconds, then
# the next pass retries it (not at once: a Horizon outage must not spin the pass).
RELEASE_WALLETS: Final[LiteralString] = """
UPDATE deposit_cursors AS c
SET polled_at = CASE WHEN r.state = 'done' THEN now() ELSE c.polled_at END,
    leased_until = CASE
        WHEN r.state = 'failed' THEN now() + make_interval(secs => $4)
        ELSE NULL
    END
FROM unnest($1::text[], $2::text[], $3::text[]) AS r (marketplace_id, wallet_id, state)
WHERE c.marketplace_id = r.marketplace_id AND c.wallet_id = r.wallet_id
"""

# Opens one wallet's cursor unless it exists (deposit_cursors_pkey).
ENSURE_CURSOR: Final[LiteralString] = """
INSERT INTO deposit_cursors (marketplace_id, wallet_id) VALUES ($1, $2)
ON CONFLICT ON CONSTRAINT deposit_cursors_pkey DO NOTHING
"""

# The page's compare-and-set: the cursor row, locked until the page's transaction ends.
LOCK_CURSOR: Final[LiteralString] = """
SELECT paging_token FROM deposit_cursors
WHERE marketplace_id = $1 AND wallet_id = $2
FOR UPDATE
"""

# Advances the cursor (in the transaction that credited the page).
SET_CURSOR: Final[LiteralString] = """
UPDATE deposit_cursors SET paging_token = $3, updated_at = now()
WHERE marketplace_id = $1 AND wallet_id = $2
"""

# The transactions among $1 that one of our operations signed, with the operation's kind
# (operation_submissions_pkey: the hash is committed before the submit call, so a payment
# seen on chain always finds its row).
OWNED_TRANSACTIONS: Final[LiteralString] = """
SELECT s.tx_hash, o.kind::text AS kind
FROM operation_submissions AS s
JOIN operations AS o ON o.marketplace_id = s.marketplace_id AND o.id = s.operation_id
WHERE s.tx_hash = ANY($1::text[])
"""

# Records newly credited deposits. No ON CONFLICT: a row is inserted only for a transfer the
# ledger just accepted as new, so a duplicate (deposits_operation_id_key) is a bug and must fail.
INSERT_DEPOSITS: Final[LiteralString] = """
INSERT INTO deposits (
    marketplace_id, id, user_id, wallet_id, operation_id, operation_type, tx_hash,
    from_address, amount_minor, asset_code, asset_issuer, transfer_id, paging_token, source,
    occurred_at
)
SELECT * FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::bigint[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
    $15::timestamptz[]
)
"""

# One deposit by its Horizon operation id (deposits_operation_id_key).
GET_DEPOSIT_BY_OPERATION: Final[LiteralString] = """
SELECT * FROM deposits WHERE marketplace_id = $1 AND operation_id = $2
"""


async def open_missing_cursors(conn: asyncpg.Connection) -> None:
    """Give every active wallet a cursor (a new wallet starts at its first operation)."""
    await conn.execute(OPEN_MISSING_CURSORS)


async def database_now(conn: asyncpg.Connection) -> datetime:
    """The database's clock (the one ``polled_at`` is stamped with)."""
    value = await conn.fetchval(DATABASE_NOW)
    assert isinstance(value, datetime)
    return value


async def claim_wallets(
    conn: asyncpg.Connection, *, polled_before: datetime, limit: int, lease_s: float
) -> list[WalletScan]:
    """Lease up to ``limit`` active wallets not polled since ``polled_before``."""
    rows = await conn.fetch(CLAIM_WALLETS, polled_before, limit, lease_s)
    return [msgspec.convert(dict(row), type=WalletScan) for row in rows]


async def release_wallets(
    conn: asyncpg.Connection,
    wallets: Sequence[tuple[str, str]],
    states: Sequence[PollState],
    *,
    retry_s: float,
) -> None:
    """End the polls of ``(marketplace_id, wallet_id)`` pairs (see ``RELEASE_WALLETS``)."""
    if wallets:
        await conn.execute(
            RELEASE_WALLETS,
            [marketplace_id for marketplace_id, _ in wallets],
            [wallet_id for _, wallet_id in wallets],
            list(states),
            retry_s,
        )


async def ensure_cursor(conn: asyncpg.Connection, marketplace_id: str, wallet_id: str) -> None:
    """Open the wallet's cursor (at its first operation) unless it exists."""
    await conn.execute(ENSURE_CURSOR, marketplace_id, wallet_id)


async def lock_cursor(conn: asyncpg.Connection, marketplace_id: str, wallet_id: str) -> str | None:
    """Lock the wallet's cursor row (it must exist) and return its paging token."""
    row = await conn.fetchrow(LOCK_CURSOR, marketplace_id, wallet_id)
    assert row is not None, "lock_cursor needs ensure_cursor first"
    token = row["paging_token"]
    assert token is None or isinstance(token, str)
    return token


async def set_cursor(
    conn: asyncpg.Connection, marketplace_id: str, wallet_id: str, paging_token: str | None
) -> None:
    """Store the wallet's cursor."""
    await conn.execute(SET_CURSOR, marketplace_id, wallet_id, paging_token)


async def owned_transactions(conn: asyncpg.Connection, hashes: Sequence[str]) -> dict[str, str]:
    """``{tx_hash: operation kind}`` for the hashes one of our operations signed."""
    if not hashes:
        return {}
    rows = await conn.fetch(OWNED_TRANSACTIONS, list(hashes))
    return {row["tx_hash"]: row["kind"] for row in rows}


async def insert_deposits(conn: asyncpg.Connection, rows: Sequence[DepositRow]) -> None:
    """Insert newly credited deposits in one statement."""
    if not rows:
        return
    # One array per column, in INSERT_DEPOSITS order (DepositRow's field order).
    columns = [[getattr(row, name) for row in rows] for name in DepositRow.__struct_fields__]
    await conn.execute(INSERT_DEPOSITS, *columns)


async def get_deposit_by_operation(
    conn: asyncpg.Connection, marketplace_id: str, operation_id: str
) -> Deposit | None:
    """The deposit that credited a Horizon operation, or ``None``."""
    row = await conn.fetchrow(GET_DEPOSIT_BY_OPERATION, marketplace_id, operation_id)
    return None if row is None else msgspec.convert(dict(row), type=Deposit)
