"""Helpers shared by the order, escrow, resolution and dispute flows (internal to ``flows``).

Locking with 404s, firing order transitions on a row, closing an order, the outbox events
every path writes (order.closed, order.operation_failed, balance.*), and party wallets.
"""

from datetime import datetime
from typing import Any, Final

import asyncpg
import msgspec

from common.errors import InvalidTransition, InvariantViolation, OrderNotFound, WalletNotReady
from common.money import format_amount
from common.times import format_time
from flows.events import emit
from flows.order_views import Order, load_orders, operation_error
from flows.queries import orders as queries
from flows.queries.operations import Operation
from flows.queries.orders import OrderRow, PartyWallet
from flows.transitions import Actor, fire
from ledger.accounts import get_account_by_code, user_account
from ledger.transfers import create_transfers
from ledger.types import Transfer, TransferResult
from statemachines import CLOSE_REASONS, OrderStatus

__all__ = [
    "ASSET",
    "CURRENCY",
    "balance_fields",
    "emit_balance",
    "emit_closed",
    "emit_operation_failed",
    "emit_order",
    "enter_closed",
    "fire_order",
    "load_order",
    "lock_order",
    "operation_actor",
    "party_wallets",
    "post_transfers",
    "require_status",
    "transaction_time",
]

# The ledger asset and the wire currency of every order: USD, backed 1:1 by USDC.
ASSET: Final = "USD"
CURRENCY: Final = "USD"


async def transaction_time(conn: asyncpg.Connection) -> datetime:
    """The transaction's timestamp (``now()``): the instant of every change it makes."""
    value = await conn.fetchval("SELECT now()")
    assert isinstance(value, datetime)
    return value


async def lock_order(conn: asyncpg.Connection, marketplace_id: str, order_id: str) -> OrderRow:
    """Lock the order; ``OrderNotFound`` when it is not in this marketplace."""
    order = await queries.lock_order(conn, marketplace_id, order_id)
    if order is None:
        raise OrderNotFound(order_id=order_id)
    return order


async def load_order(conn: asyncpg.Connection, marketplace_id: str, order_id: str) -> Order:
    """The Order view as the transaction sees it now; ``OrderNotFound`` when absent."""
    row = await queries.get_order(conn, marketplace_id, order_id)
    if row is None:
        raise OrderNotFound(order_id=order_id)
    return (await load_orders(conn, marketplace_id, [row]))[0]


def require_status(resource_type: str, resource_id: str, current: str, allowed: list[str]) -> None:
    """Raise ``InvalidTransition`` (api.md details) unless ``current`` is one of ``allowed``.

    For actions that need a status but change none (a fund, a milestone, a resume).
    """
    if current not in allowed:
        raise InvalidTransition(
            f"the {resource_type} is {current}",
            resource_type=resource_type,
            resource_id=resource_id,
            current_state=current,
            allowed_states=allowed,
        )


async def fire_order(
    conn: asyncpg.Connection, order: OrderRow, event: str, actor: Actor
) -> OrderRow:
    """Fire ``event`` on the locked order; returns the row with its new status."""
    status = await fire(
        conn,
        "order",
        marketplace_id=order.marketplace_id,
        resource_id=order.id,
        current=order.status,
        event=event,
        actor=actor,
    )
    return msgspec.structs.replace(order, status=status)


async def emit_order(
    conn: asyncpg.Connection, order: OrderRow, type: str, data: dict[str, Any]
) -> None:
    """Write an ``order.*`` event; ``order_id`` leads the data."""
    await emit(
        conn,
        marketplace_id=order.marketplace_id,
        type=type,
        resource_type="order",
        resource_id=order.id,
        data={"order_id": order.id, **data},
    )


async def enter_closed(
    conn: asyncpg.Connection, order: OrderRow, event: str, actor: Actor
) -> OrderRow:
    """Fire ``event`` into CLOSED and store its close reason; ``emit_closed`` follows later."""
    reason = CLOSE_REASONS[(OrderStatus(order.status), event)]
    await fire_order(conn, order, event, actor)
    return await queries.set_order_closed(conn, order.marketplace_id, order.id, reason.value)


async def emit_closed(conn: asyncpg.Connection, closed: OrderRow) -> None:
    """Write ``order.closed``, the last event of every path into CLOSED."""
    assert closed.closed_at is not None
    assert closed.close_reason is not None
    await emit_order(
        conn,
        closed,
        "order.closed",
        {
            "final_status": OrderStatus.CLOSED.value,
            "close_reason": closed.close_reason,
            "closed_at": format_time(closed.closed_at),
        },
    )


async def balance_fields(
    conn: asyncpg.Connection, marketplace_id: str, user_id: str
) -> dict[str, str]:
    """The user's ``available`` and ``reserved`` now, as balance events carry them."""
    account = await get_account_by_code(conn, marketplace_id, ASSET, user_account(user_id).code)
    balance = account.balance
    return {
        "available": format_amount(balance.available),
        "reserved": format_amount(balance.reserved),
    }


async def emit_balance(
    conn: asyncpg.Connection,
    marketplace_id: str,
    user_id: str,
    type: str,
    data: dict[str, Any],
) -> None:
    """Write a ``balance.*`` event with the balance after the posting (api.md 6.1)."""
    balance = await balance_fields(conn, marketplace_id, user_id)
    await emit(
        conn,
        marketplace_id=marketplace_id,
        type=type,
        resource_type="balance",
        resource_id=user_id,
        data={"user_id": user_id, **data, **balance},
    )


def operation_actor(operation: Operation) -> Actor:
    """Who moves a resource when an operation ends: the provider, via that operation."""
    return Actor(type="PROVIDER", id=operation.id)


async def emit_operation_failed(
    conn: asyncpg.Connection, order: OrderRow, operation: Operation
) -> None:
    """Write ``order.operation_failed`` for a FAILED operation, after any compensation."""
    failure = operation_error(operation)
    await emit_order(
        conn,
        order,
        "order.operation_failed",
        {
            "operation_id": operation.id,
            "kind": operation.kind.value,
            "step": operation.step,
            "error": {"code": failure.code, "message": failure.message},
            "order_status": order.status,
        },
    )


async def party_wallets(
    conn: asyncpg.Connection, order: OrderRow, *, require_active: bool = True
) -> tuple[PartyWallet, PartyWallet]:
    """The buyer's and the seller's wallets.

    Raises:
        WalletNotReady: a party has no wallet, or (``require_active``) an inactive one.
    """
    wallets = await queries.wallets_of_users(
        conn, order.marketplace_id, [order.buyer_id, order.seller_id]
    )
    for role, user_id in (("buyer", order.buyer_id), ("seller", order.seller_id)):
        wallet = wallets.get(user_id)
        if wallet is None or (require_active and not wallet.is_active):
            raise WalletNotReady(
                f"the {role}'s wallet is not activated yet",
                user_id=user_id,
                wallet_id=None if wallet is None else wallet.id,
            )
    return wallets[order.buyer_id], wallets[order.seller_id]


async def post_transfers(conn: asyncpg.Connection, transfers: list[Transfer]) -> None:
    """Post transfers that must succeed: any result but ``ok``/``exists`` is a bug.

    Raises:
        InvariantViolation: the ledger refused one of them (nothing of the batch applies
            when they are linked; the caller's transaction is rolled back by the raise).
    """
    outcomes = await create_transfers(conn, transfers)
    refused = [o for o in outcomes if o.result not in (TransferResult.OK, TransferResult.EXISTS)]
    if refused:
        raise InvariantViolation(
            "the ledger refused an order posting",
            results={o.id: o.result.value for o in refused},
        )
