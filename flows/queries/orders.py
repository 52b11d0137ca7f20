"""Statements of ``orders`` and ``milestones``, and the party lookups orders need.

Writers that change a status go through :func:`flows.transitions.fire`; these statements write
the other columns. A flow locks the order first (``FOR UPDATE``), then its escrow, dispute and
milestones, and posts to the ledger last, so two flows never wait on each other in a cycle.
"""

from datetime import datetime
from typing import Any, Final, LiteralString, TypeVar

import asyncpg
import msgspec

__all__ = [
    "MilestoneRow",
    "OrderFilters",
    "OrderRow",
    "PartyWallet",
    "get_order",
    "get_order_by_ref",
    "insert_milestone",
    "insert_order",
    "list_orders",
    "lock_milestone",
    "lock_order",
    "marketplace_fee_bps",
    "milestones_of_orders",
    "set_milestone_completed",
    "set_order_closed",
    "set_order_reserve",
    "users_present",
    "wallets_of_users",
]

T = TypeVar("T")


class OrderRow(msgspec.Struct, frozen=True, kw_only=True):
    """An ``orders`` row."""

    marketplace_id: str
    id: str
    client_order_ref: str | None
    buyer_id: str
    seller_id: str
    amount_minor: int
    currency: str
    status: str
    close_reason: str | None
    title: str
    description: str | None
    metadata: dict[str, Any] | None
    reserve_transfer_id: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class MilestoneRow(msgspec.Struct, frozen=True, kw_only=True):
    """A ``milestones`` row."""

    marketplace_id: str
    id: str
    order_id: str
    milestone_ref: str
    title: str
    amount_minor: int
    status: str
    position: int
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class PartyWallet(msgspec.Struct, frozen=True, kw_only=True):
    """The wallet of an order party: what the escrow flows need of it."""

    id: str
    user_id: str
    public_key: str
    is_active: bool


class OrderFilters(msgspec.Struct, frozen=True, kw_only=True):
    """Filters of ``GET /orders`` (api.md 3.5); ``None`` means "any"; all combine with AND."""

    statuses: list[str] | None = None
    buyer_id: str | None = None
    seller_id: str | None = None
    user_id: str | None = None
    client_order_ref: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def _one(row: asyncpg.Record | None, kind: type[T]) -> T | None:
    return None if row is None else msgspec.convert(dict(row), type=kind)


def _some(row: asyncpg.Record | None, kind: type[T]) -> T:
    found = _one(row, kind)
    assert found is not None, f"expected a {kind.__name__} row"
    return found


# Creates an order; a taken client_order_ref (orders_client_order_ref_key) returns nothing.
# ON CONFLICT waits for a concurrent insert of the same ref, so the loser sees the winner.
INSERT_ORDER: Final[LiteralString] = """
INSERT INTO orders (
    marketplace_id, id, client_order_ref, buyer_id, seller_id, amount_minor, title,
    description, metadata
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
ON CONFLICT (marketplace_id, client_order_ref) WHERE client_order_ref IS NOT NULL DO NOTHING
RETURNING *
"""

GET_ORDER: Final[LiteralString] = "SELECT * FROM orders WHERE marketplace_id = $1 AND id = $2"

LOCK_ORDER: Final[LiteralString] = GET_ORDER + " FOR UPDATE"

GET_ORDER_BY_REF: Final[LiteralString] = """
SELECT * FROM orders WHERE marketplace_id = $1 AND client_order_ref = $2
"""

# Keyset page, newest first (orders_by_created / _by_buyer / _by_seller); ($9, $10) is the
# (created_at, id) of the previous page's last row.
LIST_ORDERS: Final[LiteralString] = """
SELECT * FROM orders
WHERE marketplace_id = $1
    AND ($2::text[] IS NULL OR status = ANY($2::text[]))
    AND ($3::text IS NULL OR buyer_id = $3)
    AND ($4::text IS NULL OR seller_id = $4)
    AND ($5::text IS NULL OR buyer_id = $5 OR seller_id = $5)
    AND ($6::text IS NULL OR client_order_ref = $6)
    AND ($7::timestamptz IS NULL OR created_at >= $7)
    AND ($8::timestamptz IS NULL OR created_at < $8)
    AND ($9::timestamptz IS NULL OR (created_at, id) < ($9, $10::text))
ORDER BY created_at DESC, id DESC
LIMIT $11
"""

SET_ORDER_RESERVE: Final[LiteralString] = """
UPDATE orders SET reserve_transfer_id = $3, updated_at = now()
WHERE marketplace_id = $1 AND id = $2
RETURNING *
"""

# Runs right after the transition into CLOSED (orders_close_reason_when_closed).
SET_ORDER_CLOSED: Final[LiteralString] = """
UPDATE orders SET close_reason = $3, closed_at = now(), updated_at = now()
WHERE marketplace_id = $1 AND id = $2 AND status = 'CLOSED'
RETURNING *
"""

INSERT_MILESTONE: Final[LiteralString] = """
INSERT INTO milestones (marketplace_id, id, order_id, milestone_ref, title, amount_minor, position)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *
"""

MILESTONES_OF_ORDERS: Final[LiteralString] = """
SELECT * FROM milestones WHERE marketplace_id = $1 AND order_id = ANY($2::text[])
ORDER BY order_id, position
"""

LOCK_MILESTONE: Final[LiteralString] = """
SELECT * FROM milestones WHERE marketplace_id = $1 AND order_id = $2 AND milestone_ref = $3
FOR UPDATE
"""

# Runs right after the transition to COMPLETED (milestones_completed_at_when_completed).
SET_MILESTONE_COMPLETED: Final[LiteralString] = """
UPDATE milestones SET completed_at = now(), updated_at = now()
WHERE marketplace_id = $1 AND id = $2 AND status = 'COMPLETED'
RETURNING *
"""

USERS_PRESENT: Final[LiteralString] = """
SELECT id FROM users WHERE marketplace_id = $1 AND id = ANY($2::text[])
"""

WALLETS_OF_USERS: Final[LiteralString] = """
SELECT id, user_id, public_key, is_active FROM wallets
WHERE marketplace_id = $1 AND user_id = ANY($2::text[])
"""

MARKETPLACE_FEE_BPS: Final[LiteralString] = """
SELECT platform_fee_bps FROM marketplaces WHERE id = $1
"""


async def insert_order(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    order_id: str,
    client_order_ref: str | None,
    buyer_id: str,
    seller_id: str,
    amount_minor: int,
    title: str,
    description: str | None,
    metadata: dict[str, Any] | None,
) -> OrderRow | None:
    """Insert an ORDER_CREATED order; ``None`` when ``client_order_ref`` is already taken."""
    row = await conn.fetchrow(
        INSERT_ORDER,
        marketplace_id,
        order_id,
        client_order_ref,
        buyer_id,
        seller_id,
        amount_minor,
        title,
        description,
        metadata,
    )
    return _one(row, OrderRow)


async def get_order(
    conn: asyncpg.Connection, marketplace_id: str, order_id: str
) -> OrderRow | None:
    """One order, or ``None``."""
    return _one(await conn.fetchrow(GET_ORDER, marketplace_id, order_id), OrderRow)


async def lock_order(
    conn: asyncpg.Connection, marketplace_id: str, order_id: str
) -> OrderRow | None:
    """Lock one order (``FOR UPDATE``), or ``None``."""
    return _one(await conn.fetchrow(LOCK_ORDER, marketplace_id, order_id), OrderRow)


async def get_order_by_ref(
    conn: asyncpg.Connection, marketplace_id: str, client_order_ref: str
) -> OrderRow | None:
    """The order with this ``client_order_ref``, or ``None``."""
    row = await conn.fetchrow(GET_ORDER_BY_REF, marketplace_id, client_order_ref)
    return _one(row, OrderRow)


async def list_orders(
    conn: asyncpg.Connection,
    marketplace_id: str,
    filters: OrderFilters,
    *,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[OrderRow]:
    """Up to ``limit`` orders matching ``filters``, newest first, after the keyset ``after``."""
    after_at, after_id = after if after is not None else (None, None)
    rows = await conn.fetch(
        LIST_ORDERS,
        marketplace_id,
        filters.statuses,
        filters.buyer_id,
        filters.seller_id,
        filters.user_id,
        filters.client_order_ref,
        filters.created_after,
        filters.created_before,
        after_at,
        after_id,
        limit,
    )
    return [msgspec.convert(dict(row), type=OrderRow) for row in rows]


async def set_order_reserve(
    conn: asyncpg.Connection, marketplace_id: str, order_id: str, transfer_id: str
) -> OrderRow:
    """Store the reservation's pending transfer id on the order."""
    row = await conn.fetchrow(SET_ORDER_RESERVE, marketplace_id, order_id, transfer_id)
    return _some(row, OrderRow)


async def set_order_closed(
    conn: asyncpg.Connection, marketplace_id: str, order_id: str, close_reason: str
) -> OrderRow:
    """Store why and when a just-closed order closed."""
    row = await conn.fetchrow(SET_ORDER_CLOSED, marketplace_id, order_id, close_reason)
    return _some(row, OrderRow)


async def insert_milestone(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    milestone_id: str,
    order_id: str,
    milestone_ref: str,
    title: str,
    amount_minor: int,
    position: int,
) -> MilestoneRow:
    """Insert one OPEN milestone."""
    row = await conn.fetchrow(
        INSERT_MILESTONE,
        marketplace_id,
        milestone_id,
        order_id,
        milestone_ref,
        title,
        amount_minor,
        position,
    )
    return _some(row, MilestoneRow)


async def milestones_of_orders(
    conn: asyncpg.Connection, marketplace_id: str, order_ids: list[str]
) -> dict[str, list[MilestoneRow]]:
    """Milestones per order id, in creation order (orders without any are absent)."""
    found: dict[str, list[MilestoneRow]] = {}
    for row in await conn.fetch(MILESTONES_OF_ORDERS, marketplace_id, order_ids):
        milestone = msgspec.convert(dict(row), type=MilestoneRow)
        found.setdefault(milestone.order_id, []).append(milestone)
    return found


async def lock_milestone(
    conn: asyncpg.Connection, marketplace_id: str, order_id: str, milestone_ref: str
) -> MilestoneRow | None:
    """Lock one milestone of an order by its ref, or ``None``."""
    row = await conn.fetchrow(LOCK_MILESTONE, marketplace_id, order_id, milestone_ref)
    return _one(row, MilestoneRow)


async def set_milestone_completed(
    conn: asyncpg.Connection, marketplace_id: str, milestone_id: str
) -> MilestoneRow:
    """Stamp ``completed_at`` on a just-completed milestone."""
    row = await conn.fetchrow(SET_MILESTONE_COMPLETED, marketplace_id, milestone_id)
    return _some(row, MilestoneRow)


async def users_present(
    conn: asyncpg.Connection, marketplace_id: str, user_ids: list[str]
) -> set[str]:
    """Which of ``user_ids`` exist in the marketplace."""
    rows = await conn.fetch(USERS_PRESENT, marketplace_id, user_ids)
    return {row["id"] for row in rows}


async def wallets_of_users(
    conn: asyncpg.Connection, marketplace_id: str, user_ids: list[str]
) -> dict[str, PartyWallet]:
    """The wallet per user id (users without one are absent)."""
    rows = await conn.fetch(WALLETS_OF_USERS, marketplace_id, user_ids)
    wallets = [msgspec.convert(dict(row), type=PartyWallet) for row in rows]
    return {wallet.user_id: wallet for wallet in wallets}


async def marketplace_fee_bps(conn: asyncpg.Connection, marketplace_id: str) -> int:
    """The marketplace's platform fee in basis points."""
    value = await conn.fetchval(MARKETPLACE_FEE_BPS, marketplace_id)
    assert value is not None, f"marketplace {marketplace_id} does not exist"
    return int(value)
