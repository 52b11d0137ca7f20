"""Statements of ``escrows``, and the per-order "latest" lookups an Order view needs.

A status change goes through :func:`flows.transitions.fire`; these statements write the other
columns, each right before or after its transition as the escrows_* CHECKs require.
"""

from datetime import datetime
from typing import Any, Final, LiteralString

import asyncpg
import msgspec

from flows.queries.operations import Operation

__all__ = [
    "EscrowRow",
    "escrows_of_orders",
    "insert_escrow",
    "latest_disputes_of_orders",
    "latest_operations_of_orders",
    "live_escrow",
    "lock_escrow",
    "set_escrow_contract",
    "set_escrow_funded",
    "set_escrow_settled",
]


class EscrowRow(msgspec.Struct, frozen=True, kw_only=True):
    """An ``escrows`` row (``payouts`` as stored: objects with integer minor amounts)."""

    marketplace_id: str
    id: str
    order_id: str
    status: str
    amount_minor: int
    currency: str
    contract_id: str | None
    platform_fee_bps: int
    trustless_work_fee_bps: int
    funding_transaction_hash: str | None
    payouts: list[dict[str, Any]]
    funded_at: datetime | None
    released_at: datetime | None
    refunded_at: datetime | None
    created_at: datetime
    updated_at: datetime


def _escrow(row: asyncpg.Record | None) -> EscrowRow | None:
    return None if row is None else msgspec.convert(dict(row), type=EscrowRow)


def _written(row: asyncpg.Record | None) -> EscrowRow:
    escrow = _escrow(row)
    assert escrow is not None, "the escrow is not in the status this write expects"
    return escrow


INSERT_ESCROW: Final[LiteralString] = """
INSERT INTO escrows (marketplace_id, id, order_id, amount_minor, platform_fee_bps)
VALUES ($1, $2, $3, $4, $5)
RETURNING *
"""

LOCK_ESCROW: Final[LiteralString] = """
SELECT * FROM escrows WHERE marketplace_id = $1 AND id = $2 FOR UPDATE
"""

# The order's escrow that is not FAILED (escrows_one_live_per_order), locked.
LIVE_ESCROW: Final[LiteralString] = """
SELECT * FROM escrows WHERE marketplace_id = $1 AND order_id = $2 AND status <> 'FAILED'
FOR UPDATE
"""

# The latest escrow of each order (escrows_by_order).
ESCROWS_OF_ORDERS: Final[LiteralString] = """
SELECT DISTINCT ON (order_id) * FROM escrows
WHERE marketplace_id = $1 AND order_id = ANY($2::text[])
ORDER BY order_id, created_at DESC, id DESC
"""

# Written while CREATING, before the transition to CREATED (escrows_deployed_has_contract).
SET_ESCROW_CONTRACT: Final[LiteralString] = """
UPDATE escrows SET contract_id = $3, updated_at = now()
WHERE marketplace_id = $1 AND id = $2 AND status = 'CREATING'
RETURNING *
"""

SET_ESCROW_FUNDED: Final[LiteralString] = """
UPDATE escrows SET funding_transaction_hash = $3, funded_at = now(), updated_at = now()
WHERE marketplace_id = $1 AND id = $2 AND status = 'FUNDED'
RETURNING *
"""

# After the transition to RELEASED or REFUNDED: the payouts and the matching timestamp
# (escrows_released_at_when_released, escrows_refunded_at_when_refunded).
SET_ESCROW_SETTLED: Final[LiteralString] = """
UPDATE escrows
SET payouts = $3::jsonb,
    released_at = CASE WHEN status = 'RELEASED' THEN now() END,
    refunded_at = CASE WHEN status = 'REFUNDED' THEN now() END,
    updated_at = now()
WHERE marketplace_id = $1 AND id = $2 AND status IN ('RELEASED', 'REFUNDED')
RETURNING *
"""

# The latest dispute id of each order (disputes_by_order).
LATEST_DISPUTES_OF_ORDERS: Final[LiteralString] = """
SELECT DISTINCT ON (order_id) order_id, id FROM disputes
WHERE marketplace_id = $1 AND order_id = ANY($2::text[])
ORDER BY order_id, created_at DESC, id DESC
"""

# The latest operation of each order (operations_by_order).
LATEST_OPERATIONS_OF_ORDERS: Final[LiteralString] = """
SELECT DISTINCT ON (resource_id) * FROM operations
WHERE marketplace_id = $1 AND resource_type = 'order' AND resource_id = ANY($2::text[])
ORDER BY resource_id, created_at DESC, id DESC
"""


async def insert_escrow(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    escrow_id: str,
    order_id: str,
    amount_minor: int,
    platform_fee_bps: int,
) -> EscrowRow:
    """Insert a CREATING escrow (escrows_one_live_per_order refuses a second live one)."""
    row = await conn.fetchrow(
        INSERT_ESCROW, marketplace_id, escrow_id, order_id, amount_minor, platform_fee_bps
    )
    return _written(row)


async def lock_escrow(
    conn: asyncpg.Connection, marketplace_id: str, escrow_id: str
) -> EscrowRow | None:
    """Lock one escrow by id, or ``None``."""
    return _escrow(await conn.fetchrow(LOCK_ESCROW, marketplace_id, escrow_id))


async def live_escrow(
    conn: asyncpg.Connection, marketplace_id: str, order_id: str
) -> EscrowRow | None:
    """Lock the order's non-FAILED escrow, or ``None``."""
    return _escrow(await conn.fetchrow(LIVE_ESCROW, marketplace_id, order_id))


async def escrows_of_orders(
    conn: asyncpg.Connection, marketplace_id: str, order_ids: list[str]
) -> dict[str, EscrowRow]:
    """The latest escrow per order id (orders without one are absent)."""
    rows = await conn.fetch(ESCROWS_OF_ORDERS, marketplace_id, order_ids)
    escrows = [msgspec.convert(dict(row), type=EscrowRow) for row in rows]
    return {escrow.order_id: escrow for escrow in escrows}


async def set_escrow_contract(
    conn: asyncpg.Connection, marketplace_id: str, escrow_id: str, contract_id: str
) -> EscrowRow:
    """Store the deployed contract id on a CREATING escrow."""
    return _written(
        await conn.fetchrow(SET_ESCROW_CONTRACT, marketplace_id, escrow_id, contract_id)
    )


async def set_escrow_funded(
    conn: asyncpg.Connection, marketplace_id: str, escrow_id: str, tx_hash: str | None
) -> EscrowRow:
    """Stamp the funding (hash, time) on a just-FUNDED escrow."""
    return _written(await conn.fetchrow(SET_ESCROW_FUNDED, marketplace_id, escrow_id, tx_hash))


async def set_escrow_settled(
    conn: asyncpg.Connection, marketplace_id: str, escrow_id: str, payouts: list[dict[str, Any]]
) -> EscrowRow:
    """Store the payouts of a just-RELEASED or just-REFUNDED escrow."""
    return _written(await conn.fetchrow(SET_ESCROW_SETTLED, marketplace_id, escrow_id, payouts))


async def latest_disputes_of_orders(
    conn: asyncpg.Connection, marketplace_id: str, order_ids: list[str]
) -> dict[str, str]:
    """The latest dispute id per order id."""
    rows = await conn.fetch(LATEST_DISPUTES_OF_ORDERS, marketplace_id, order_ids)
    return {row["order_id"]: row["id"] for row in rows}


async def latest_operations_of_orders(
    conn: asyncpg.Connection, marketplace_id: str, order_ids: list[str]
) -> dict[str, Operation]:
    """The latest operation per order id (of any kind and status)."""
    rows = await conn.fetch(LATEST_OPERATIONS_OF_ORDERS, marketplace_id, order_ids)
    operations = [msgspec.convert(dict(row), type=Operation) for row in rows]
    return {operation.resource_id: operation for operation in operations}
