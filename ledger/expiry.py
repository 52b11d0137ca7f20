"""Expiry of timed-out pending transfers: each is released by one EXPIRE_PENDING transfer."""

from typing import Final, LiteralString

import asyncpg

from common.ids import derived_id
from ledger.transfers import create_transfers
from ledger.types import Transfer, TransferOutcome, TransferPhase

__all__ = ["expire_pending_transfers"]

# Timed pending transfers whose timeout passed and that nothing resolved yet
# (ledger_transfers_expiry, then ledger_transfers_pending_resolved_once for the anti-join).
SELECT_EXPIRED: Final[LiteralString] = """
SELECT t.marketplace_id, t.id, t.code
FROM ledger_transfers AS t
WHERE t.expires_at IS NOT NULL
    AND t.expires_at <= clock_timestamp()
    AND NOT EXISTS (
        SELECT 1 FROM ledger_transfers AS r
        WHERE r.marketplace_id = t.marketplace_id AND r.pending_id = t.id
    )
ORDER BY t.expires_at
LIMIT $1
"""


def expiry_transfer_id(marketplace_id: str, pending_id: str) -> str:
    """The id of the transfer that expires ``pending_id``: derived, so sweeps never double up."""
    return derived_id("trf_", "expire", marketplace_id, pending_id)


async def expire_pending_transfers(
    conn: asyncpg.Connection, *, limit: int = 1000
) -> list[TransferOutcome]:
    """Expire up to ``limit`` timed-out pending transfers, in the caller's transaction.

    Each gets an EXPIRE_PENDING transfer with a derived id, so two sweepers racing each other
    produce ``exists`` (or a retried race), never a second release.
    """
    rows = await conn.fetch(SELECT_EXPIRED, limit)
    expiries = [
        Transfer(
            id=expiry_transfer_id(row["marketplace_id"], row["id"]),
            marketplace_id=row["marketplace_id"],
            code=row["code"],
            phase=TransferPhase.EXPIRE_PENDING,
            pending_id=row["id"],
        )
        for row in rows
    ]
    return await create_transfers(conn, expiries)
