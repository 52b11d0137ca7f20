"""Order funds before the escrow (api.md 3.5): reserve the buyer's balance, or cancel.

Reserve writes a PENDING transfer ``user:<buyer>`` -> ``escrow:<ord>`` (available down,
reserved up); the escrow funding posts it later. Cancel, the only way out before the escrow,
voids it. Both run in the caller's transaction with the order locked.
"""

import asyncpg

from common.errors import InsufficientFunds, InvariantViolation, ReserveMismatchAmount
from common.ids import new_id
from common.money import format_amount
from common.times import format_time
from flows.order_support import (
    ASSET,
    CURRENCY,
    emit_balance,
    emit_closed,
    emit_order,
    enter_closed,
    fire_order,
    load_order,
    lock_order,
    post_transfers,
)
from flows.order_views import Order
from flows.queries import orders as queries
from flows.queries.orders import OrderRow
from flows.transitions import Actor, next_status
from ledger.accounts import escrow_account, get_account_by_code, open_account, user_account
from ledger.transfers import create_transfers
from ledger.types import Transfer, TransferPhase, TransferResult

__all__ = ["cancel_order", "reserve_order"]


async def _hold(conn: asyncpg.Connection, order: OrderRow) -> str:
    """Write the PENDING reservation transfer; its id. ``InsufficientFunds`` when short."""
    marketplace_id = order.marketplace_id
    buyer = await open_account(conn, marketplace_id, ASSET, user_account(order.buyer_id))
    escrow = await open_account(conn, marketplace_id, ASSET, escrow_account(order.id))
    transfer_id = new_id("trf_")
    [outcome] = await create_transfers(
        conn,
        [
            Transfer(
                id=transfer_id,
                marketplace_id=marketplace_id,
                code="order_reserve",
                debit_account_id=buyer.id,
                credit_account_id=escrow.id,
                amount=order.amount_minor,
                asset=ASSET,
                phase=TransferPhase.PENDING,
                order_id=order.id,
                user_id=order.buyer_id,
            )
        ],
    )
    if outcome.result is TransferResult.EXCEEDS_CREDITS:
        # The bound is checked under the account lock, so this is the balance that refused.
        account = await get_account_by_code(conn, marketplace_id, ASSET, buyer.code)
        raise InsufficientFunds(
            user_id=order.buyer_id,
            available=format_amount(max(account.balance.available, 0)),
            requested=format_amount(order.amount_minor),
            currency=CURRENCY,
        )
    if outcome.result is not TransferResult.OK:
        raise InvariantViolation("the ledger refused a reservation", result=outcome.result.value)
    return transfer_id


async def reserve_order(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    actor: Actor,
    order_id: str,
    amount_minor: int | None = None,
) -> Order:
    """Reserve the order amount: a PENDING transfer ``user:<buyer>`` -> ``escrow:<ord>``.

    Raises:
        OrderNotFound: no such order in the marketplace.
        InvalidTransition: the order is not ORDER_CREATED.
        ReserveMismatchAmount: ``amount_minor`` is given and differs from the order amount.
        InsufficientFunds: the buyer's available balance is below the amount.
    """
    order = await lock_order(conn, marketplace_id, order_id)
    next_status("order", order.status, "reserve", order.id)
    if amount_minor is not None and amount_minor != order.amount_minor:
        raise ReserveMismatchAmount(
            amount=format_amount(amount_minor), order_amount=format_amount(order.amount_minor)
        )
    transfer_id = await _hold(conn, order)
    order = await fire_order(conn, order, "reserve", actor)
    order = await queries.set_order_reserve(conn, marketplace_id, order.id, transfer_id)
    amount = format_amount(order.amount_minor)
    await emit_balance(
        conn,
        marketplace_id,
        order.buyer_id,
        "balance.reserved",
        {
            "amount": amount,
            "currency": CURRENCY,
            "order_id": order.id,
            "withdrawal_id": None,
            "transfer_id": transfer_id,
        },
    )
    await emit_order(
        conn,
        order,
        "order.funds_reserved",
        {
            "buyer_id": order.buyer_id,
            "amount": amount,
            "currency": CURRENCY,
            "transfer_id": transfer_id,
        },
    )
    return await load_order(conn, marketplace_id, order.id)


async def cancel_order(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    actor: Actor,
    order_id: str,
    reason: str | None = None,
) -> Order:
    """Cancel an order before its escrow: void the reservation if any; order CLOSED (CANCELED).

    Raises:
        OrderNotFound: no such order in the marketplace.
        InvalidTransition: the order is neither ORDER_CREATED nor FUNDS_RESERVED.
    """
    order = await lock_order(conn, marketplace_id, order_id)
    next_status("order", order.status, "cancel", order.id)
    reserved = order.reserve_transfer_id is not None
    if reserved:
        transfer_id = new_id("trf_")
        await post_transfers(
            conn,
            [
                Transfer(
                    id=transfer_id,
                    marketplace_id=marketplace_id,
                    code="order_cancel",
                    phase=TransferPhase.VOID_PENDING,
                    pending_id=order.reserve_transfer_id,
                    order_id=order.id,
                    user_id=order.buyer_id,
                )
            ],
        )
        await emit_balance(
            conn,
            marketplace_id,
            order.buyer_id,
            "balance.released",
            {
                "amount": format_amount(order.amount_minor),
                "currency": CURRENCY,
                "order_id": order.id,
                "withdrawal_id": None,
                "reason": "cancel",
                "returned_to_available": True,
                "transfer_id": transfer_id,
            },
        )
    closed = await enter_closed(conn, order, "cancel", actor)
    assert closed.closed_at is not None
    await emit_order(
        conn,
        closed,
        "order.canceled",
        {
            "buyer_id": order.buyer_id,
            "canceled_by": actor.id,
            "reason": reason,
            "funds_released": reserved,
            "canceled_at": format_time(closed.closed_at),
        },
    )
    await emit_closed(conn, closed)
    return await load_order(conn, marketplace_id, order.id)
