"""Escrow deploy and funding of an order (api.md 3.5): the actions and their operation hooks.

``start_escrow_create`` and ``start_escrow_fund`` change state and start a durable operation
in the caller's transaction; the chain work happens in the worker. The hooks below run in the
transaction that ends the operation: on success they move the order on (posting the reserved
funds when the contract is funded), on a definitive failure they apply api.md 5's compensation.
"""

from typing import Any

import asyncpg

from common.errors import EscrowAlreadyExists, EscrowAlreadyFunded, EscrowNotFound
from common.ids import derived_id, new_id
from common.money import format_amount
from common.times import format_time
from flows.audit import record_audit
from flows.events import emit
from flows.operations import Registry, start_operation
from flows.order_support import (
    CURRENCY,
    emit_balance,
    emit_operation_failed,
    emit_order,
    fire_order,
    load_order,
    lock_order,
    operation_actor,
    party_wallets,
    post_transfers,
    require_status,
)
from flows.order_views import Order
from flows.queries import escrows as escrow_queries
from flows.queries import orders as queries
from flows.queries.escrows import EscrowRow
from flows.queries.operations import Operation, OperationKind
from flows.queries.orders import OrderRow
from flows.transitions import Actor, fire, next_status
from ledger.types import Transfer, TransferPhase
from statemachines import EscrowStatus, OrderStatus

__all__ = [
    "on_create_failed",
    "on_create_succeeded",
    "on_fund_failed",
    "on_fund_succeeded",
    "start_escrow_create",
    "start_escrow_fund",
]


async def _fire_escrow(
    conn: asyncpg.Connection, escrow: EscrowRow, event: str, actor: Actor
) -> str:
    return await fire(
        conn,
        "escrow",
        marketplace_id=escrow.marketplace_id,
        resource_id=escrow.id,
        current=escrow.status,
        event=event,
        actor=actor,
    )


async def _escrow_of(conn: asyncpg.Connection, operation: Operation) -> EscrowRow:
    escrow = await escrow_queries.lock_escrow(
        conn, operation.marketplace_id, str(operation.payload["escrow_id"])
    )
    assert escrow is not None, f"operation {operation.id} names no escrow"
    return escrow


async def start_escrow_create(
    conn: asyncpg.Connection,
    registry: Registry,
    *,
    marketplace_id: str,
    actor: Actor,
    order_id: str,
) -> Order:
    """Start deploying the order's contract: order ESCROW_CREATING, escrow CREATING.

    Raises:
        OrderNotFound: no such order in the marketplace.
        EscrowAlreadyExists: the order has a non-FAILED escrow (checked before the state).
        InvalidTransition: the order is not FUNDS_RESERVED.
        WalletNotReady: the buyer's or the seller's wallet is not activated.
    """
    order = await lock_order(conn, marketplace_id, order_id)
    live = await escrow_queries.live_escrow(conn, marketplace_id, order.id)
    if live is not None:
        raise EscrowAlreadyExists(order_id=order.id, escrow_id=live.id)
    next_status("order", order.status, "start_escrow", order.id)
    buyer_wallet, seller_wallet = await party_wallets(conn, order)
    escrow = await escrow_queries.insert_escrow(
        conn,
        marketplace_id=marketplace_id,
        escrow_id=new_id("esc_"),
        order_id=order.id,
        amount_minor=order.amount_minor,
        platform_fee_bps=await queries.marketplace_fee_bps(conn, marketplace_id),
    )
    await record_audit(
        conn,
        marketplace_id=marketplace_id,
        actor_type=actor.type,
        actor_id=actor.id,
        action="ESCROW_CREATING",
        resource_type="escrow",
        resource_id=escrow.id,
        after={"status": escrow.status, "order_id": order.id},
        request_id=actor.request_id,
    )
    order = await fire_order(conn, order, "start_escrow", actor)
    milestones = (await queries.milestones_of_orders(conn, marketplace_id, [order.id])).get(
        order.id, []
    )
    payload: dict[str, Any] = {
        "order_id": order.id,
        "escrow_id": escrow.id,
        "title": order.title,
        # The contract wants a description; the title stands in when the order has none.
        "description": order.description or order.title,
        "amount_minor": order.amount_minor,
        "platform_fee_bps": escrow.platform_fee_bps,
        # One on-chain milestone per order milestone, or one for the whole order.
        "milestones": [m.title for m in milestones] or [order.title],
        "buyer_wallet_id": buyer_wallet.id,
        "seller_wallet_id": seller_wallet.id,
    }
    operation = await start_operation(
        conn,
        registry,
        marketplace_id=marketplace_id,
        kind=OperationKind.ESCROW_CREATE,
        resource_type="order",
        resource_id=order.id,
        payload=payload,
    )
    # The order left FUNDS_RESERVED in this transaction, so no other deploy can be running.
    assert operation.payload["escrow_id"] == escrow.id
    await emit_order(
        conn,
        order,
        "order.escrow_creating",
        {"escrow_id": escrow.id, "amount": format_amount(order.amount_minor)},
    )
    return await load_order(conn, marketplace_id, order.id)


async def on_create_succeeded(conn: asyncpg.Connection, operation: Operation) -> None:
    """ESCROW_CREATE succeeded: escrow CREATED with its contract, order ESCROW_FUNDING."""
    actor = operation_actor(operation)
    order = await lock_order(conn, operation.marketplace_id, operation.resource_id)
    escrow = await _escrow_of(conn, operation)
    contract_id = str(operation.payload["contract_id"])
    escrow = await escrow_queries.set_escrow_contract(
        conn, escrow.marketplace_id, escrow.id, contract_id
    )
    await _fire_escrow(conn, escrow, "confirm_deploy", actor)
    order = await fire_order(conn, order, "escrow_deployed", actor)
    await emit(
        conn,
        marketplace_id=escrow.marketplace_id,
        type="escrow.created",
        resource_type="escrow",
        resource_id=escrow.id,
        data={
            "escrow_id": escrow.id,
            "order_id": order.id,
            "trustless_contract_id": contract_id,
            "amount": format_amount(escrow.amount_minor),
            "transaction_hash": operation.payload.get("deploy_tx_hash"),
        },
    )
    await emit_order(
        conn,
        order,
        "order.escrow_funding",
        {"escrow_id": escrow.id, "trustless_contract_id": contract_id},
    )


async def on_create_failed(conn: asyncpg.Connection, operation: Operation) -> None:
    """ESCROW_CREATE failed for good: escrow FAILED, order back to FUNDS_RESERVED."""
    actor = operation_actor(operation)
    order = await lock_order(conn, operation.marketplace_id, operation.resource_id)
    escrow = await _escrow_of(conn, operation)
    await _fire_escrow(conn, escrow, "reject_deploy", actor)
    order = await fire_order(conn, order, "deploy_failed", actor)
    await emit_operation_failed(conn, order, operation)


async def start_escrow_fund(
    conn: asyncpg.Connection,
    registry: Registry,
    *,
    marketplace_id: str,
    actor: Actor,
    order_id: str,
) -> Order:
    """Start funding the deployed contract from the buyer's wallet: escrow FUNDING.

    Raises:
        OrderNotFound: no such order in the marketplace.
        EscrowNotFound: the order has no live (non-FAILED) escrow.
        EscrowAlreadyFunded: the escrow is FUNDING or FUNDED (checked before the state).
        InvalidTransition: the order is not ESCROW_FUNDING.
        WalletNotReady: the buyer's wallet is not activated.
    """
    order = await lock_order(conn, marketplace_id, order_id)
    escrow = await escrow_queries.live_escrow(conn, marketplace_id, order.id)
    if escrow is None:
        raise EscrowNotFound(order_id=order.id)
    if escrow.status in (EscrowStatus.FUNDING, EscrowStatus.FUNDED):
        raise EscrowAlreadyFunded(escrow_id=escrow.id, escrow_status=escrow.status)
    require_status("order", order.id, order.status, [OrderStatus.ESCROW_FUNDING.value])
    buyer_wallet, _ = await party_wallets(conn, order)
    await _fire_escrow(conn, escrow, "fund", actor)
    await start_operation(
        conn,
        registry,
        marketplace_id=marketplace_id,
        kind=OperationKind.ESCROW_FUND,
        resource_type="order",
        resource_id=order.id,
        payload={
            "order_id": order.id,
            "escrow_id": escrow.id,
            "contract_id": escrow.contract_id,
            "amount_minor": escrow.amount_minor,
            "buyer_wallet_id": buyer_wallet.id,
        },
    )
    await emit(
        conn,
        marketplace_id=marketplace_id,
        type="escrow.funding_started",
        resource_type="escrow",
        resource_id=escrow.id,
        data={
            "escrow_id": escrow.id,
            "order_id": order.id,
            "trustless_contract_id": escrow.contract_id,
            "amount": format_amount(escrow.amount_minor),
        },
    )
    return await load_order(conn, marketplace_id, order.id)


async def _post_reservation(conn: asyncpg.Connection, order: OrderRow, operation: Operation) -> str:
    """Post the order's pending reservation: the USDC now sits in the contract."""
    assert order.reserve_transfer_id is not None, f"order {order.id} was funded unreserved"
    transfer_id = derived_id("trf_", order.marketplace_id, operation.id, "order_fund")
    await post_transfers(
        conn,
        [
            Transfer(
                id=transfer_id,
                marketplace_id=order.marketplace_id,
                code="order_fund",
                phase=TransferPhase.POST_PENDING,
                pending_id=order.reserve_transfer_id,
                order_id=order.id,
                user_id=order.buyer_id,
                external_ref=operation.payload.get("fund_tx_hash"),
            )
        ],
    )
    return transfer_id


async def on_fund_succeeded(conn: asyncpg.Connection, operation: Operation) -> None:
    """ESCROW_FUND succeeded: post the reservation, escrow FUNDED, order IN_PROGRESS."""
    actor = operation_actor(operation)
    order = await lock_order(conn, operation.marketplace_id, operation.resource_id)
    escrow = await _escrow_of(conn, operation)
    transfer_id = await _post_reservation(conn, order, operation)
    await _fire_escrow(conn, escrow, "confirm_funding", actor)
    tx_hash = operation.payload.get("fund_tx_hash")
    escrow = await escrow_queries.set_escrow_funded(conn, escrow.marketplace_id, escrow.id, tx_hash)
    assert escrow.funded_at is not None
    funded_at = format_time(escrow.funded_at)
    amount = format_amount(escrow.amount_minor)
    await emit(
        conn,
        marketplace_id=escrow.marketplace_id,
        type="escrow.funded",
        resource_type="escrow",
        resource_id=escrow.id,
        data={
            "escrow_id": escrow.id,
            "order_id": order.id,
            "amount": amount,
            "funded_at": funded_at,
            "transaction_hash": tx_hash,
        },
    )
    await emit_balance(
        conn,
        order.marketplace_id,
        order.buyer_id,
        "balance.released",
        {
            "amount": amount,
            "currency": CURRENCY,
            "order_id": order.id,
            "withdrawal_id": None,
            "reason": "escrow_funded",
            # The reserved funds left for the contract: nothing returns to available.
            "returned_to_available": False,
            "transfer_id": transfer_id,
        },
    )
    order = await fire_order(conn, order, "escrow_funded", actor)
    await emit_order(
        conn,
        order,
        "order.escrow_funded",
        {
            "escrow_id": escrow.id,
            "trustless_contract_id": escrow.contract_id,
            "amount": amount,
            "funded_at": funded_at,
            "transaction_hash": tx_hash,
        },
    )
    order = await fire_order(conn, order, "start_work", actor)
    await emit_order(conn, order, "order.in_progress", {})


async def on_fund_failed(conn: asyncpg.Connection, operation: Operation) -> None:
    """ESCROW_FUND failed for good: escrow back to CREATED, reservation kept, order stays."""
    order = await lock_order(conn, operation.marketplace_id, operation.resource_id)
    escrow = await _escrow_of(conn, operation)
    await _fire_escrow(conn, escrow, "reject_funding", operation_actor(operation))
    await emit_operation_failed(conn, order, operation)
