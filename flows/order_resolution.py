"""Release and refund of a funded order (api.md 3.6): the actions and their operation hooks.

A release pays the seller (net of the contract's fees); a refund is a dispute + resolution that
pays the buyer the whole balance (net of the same fees). Both answer from IN_PROGRESS; a FAILED
operation leaves the order in RELEASE_REQUESTED / REFUND_REQUESTED and re-sending the action
starts a new operation of the same kind, which resumes at the first unconfirmed chain step.
"""

from collections.abc import Awaitable, Callable
from typing import Any, Final

import asyncpg
import msgspec

from common.errors import DisputeAlreadyOpen, EscrowNotReady, InvalidTransition
from common.times import format_time
from flows.operations import Registry, start_operation
from flows.order_settlement import (
    EscrowAddresses,
    Share,
    conclude_settlement,
    settle_escrow,
)
from flows.order_support import (
    emit_operation_failed,
    emit_order,
    fire_order,
    load_order,
    lock_order,
    party_wallets,
    transaction_time,
)
from flows.order_views import Order
from flows.queries import disputes as dispute_queries
from flows.queries import escrows as escrow_queries
from flows.queries import orders as queries
from flows.queries.escrows import EscrowRow
from flows.queries.operations import Operation, OperationKind, OperationStatus
from flows.queries.orders import OrderRow
from flows.transitions import Actor, fire, next_status
from statemachines import EscrowStatus, MilestoneStatus, OrderStatus

__all__ = [
    "on_refund_failed",
    "on_release_failed",
    "refund_succeeded_hook",
    "release_succeeded_hook",
    "request_refund",
    "request_release",
]

Hook = Callable[[asyncpg.Connection, Operation], Awaitable[None]]


class _Action(msgspec.Struct, frozen=True):
    """What differs between a release and a refund."""

    kind: OperationKind
    order_event: str
    escrow_event: str
    requested: OrderStatus
    event_type: str


_RELEASE: Final = _Action(
    OperationKind.RELEASE,
    "request_release",
    "release",
    OrderStatus.RELEASE_REQUESTED,
    "order.release_requested",
)
_REFUND: Final = _Action(
    OperationKind.REFUND,
    "request_refund",
    "refund",
    OrderStatus.REFUND_REQUESTED,
    "order.refund_requested",
)


async def _payload(
    conn: asyncpg.Connection, order: OrderRow, escrow: EscrowRow, action: _Action
) -> dict[str, Any]:
    """The start payload of RELEASE or REFUND (op_contract)."""
    buyer_wallet, seller_wallet = await party_wallets(conn, order)
    payload: dict[str, Any] = {
        "order_id": order.id,
        "escrow_id": escrow.id,
        "contract_id": escrow.contract_id,
        "buyer_wallet_id": buyer_wallet.id,
        # Not in the REFUND contract, but the refund steps resolve the parties from both.
        "seller_wallet_id": seller_wallet.id,
    }
    if action.kind is OperationKind.RELEASE:
        milestones = await queries.milestones_of_orders(conn, order.marketplace_id, [order.id])
        # The contract has one milestone per order milestone, or one for the whole order.
        payload["milestone_count"] = max(1, len(milestones.get(order.id, [])))
    return payload


async def _check_open_milestones(conn: asyncpg.Connection, order: OrderRow) -> None:
    milestones = await queries.milestones_of_orders(conn, order.marketplace_id, [order.id])
    open_refs = [
        m.milestone_ref for m in milestones.get(order.id, []) if m.status == MilestoneStatus.OPEN
    ]
    if open_refs:
        raise InvalidTransition(
            "every milestone must be completed before a release",
            resource_type="order",
            resource_id=order.id,
            current_state=order.status,
            allowed_states=[OrderStatus.IN_PROGRESS.value],
            open_milestones=open_refs,
        )


async def _resume(
    conn: asyncpg.Connection, registry: Registry, order: OrderRow, action: _Action
) -> None:
    """Start a new operation when the last one of this kind FAILED; else INVALID_STATE."""
    latest = (
        await escrow_queries.latest_operations_of_orders(conn, order.marketplace_id, [order.id])
    ).get(order.id)
    if latest is None or latest.kind != action.kind or latest.status != OperationStatus.FAILED:
        raise InvalidTransition(
            "an operation is already running on this order",
            resource_type="order",
            resource_id=order.id,
            current_state=order.status,
            allowed_states=[OrderStatus.IN_PROGRESS.value],
            operation_id=None if latest is None else latest.id,
        )
    escrow = await escrow_queries.lock_escrow(
        conn, order.marketplace_id, str(latest.payload["escrow_id"])
    )
    assert escrow is not None
    await start_operation(
        conn,
        registry,
        marketplace_id=order.marketplace_id,
        kind=action.kind,
        resource_type="order",
        resource_id=order.id,
        payload=await _payload(conn, order, escrow, action),
    )


async def _request(
    conn: asyncpg.Connection,
    registry: Registry,
    *,
    marketplace_id: str,
    actor: Actor,
    order_id: str,
    reason: str | None,
    action: _Action,
) -> Order:
    order = await lock_order(conn, marketplace_id, order_id)
    if order.status == action.requested:
        await _resume(conn, registry, order, action)
        return await load_order(conn, marketplace_id, order.id)
    dispute = await dispute_queries.unresolved_dispute(conn, marketplace_id, order.id)
    if dispute is not None:
        raise DisputeAlreadyOpen(order_id=order.id, dispute_id=dispute.id)
    next_status("order", order.status, action.order_event, order.id)
    escrow = await escrow_queries.live_escrow(conn, marketplace_id, order.id)
    if escrow is None or escrow.status != EscrowStatus.FUNDED:
        raise EscrowNotReady(
            order_id=order.id,
            escrow_id=None if escrow is None else escrow.id,
            escrow_status=None if escrow is None else escrow.status,
        )
    if action.kind is OperationKind.RELEASE:
        await _check_open_milestones(conn, order)
    await fire(
        conn,
        "escrow",
        marketplace_id=marketplace_id,
        resource_id=escrow.id,
        current=escrow.status,
        event=action.escrow_event,
        actor=actor,
    )
    order = await fire_order(conn, order, action.order_event, actor)
    await start_operation(
        conn,
        registry,
        marketplace_id=marketplace_id,
        kind=action.kind,
        resource_type="order",
        resource_id=order.id,
        payload=await _payload(conn, order, escrow, action),
    )
    await emit_order(
        conn,
        order,
        action.event_type,
        {
            "requested_by": actor.id,
            "reason": reason,
            "requested_at": format_time(await transaction_time(conn)),
        },
    )
    return await load_order(conn, marketplace_id, order.id)


async def request_release(
    conn: asyncpg.Connection,
    registry: Registry,
    *,
    marketplace_id: str,
    actor: Actor,
    order_id: str,
    reason: str | None = None,
) -> Order:
    """Start releasing the escrow to the seller: order RELEASE_REQUESTED, escrow RELEASING.

    From RELEASE_REQUESTED with a FAILED release, starts a new RELEASE (resume).

    Raises:
        OrderNotFound: no such order in the marketplace.
        DisputeAlreadyOpen: the order has an unresolved dispute (checked before the state).
        InvalidTransition: the order is not IN_PROGRESS, an operation is running, or a
            milestone is still open (``details.open_milestones``).
        EscrowNotReady: the escrow is not FUNDED.
    """
    return await _request(
        conn,
        registry,
        marketplace_id=marketplace_id,
        actor=actor,
        order_id=order_id,
        reason=reason,
        action=_RELEASE,
    )


async def request_refund(
    conn: asyncpg.Connection,
    registry: Registry,
    *,
    marketplace_id: str,
    actor: Actor,
    order_id: str,
    reason: str | None = None,
) -> Order:
    """Start refunding the escrow to the buyer: order REFUND_REQUESTED, escrow REFUNDING.

    From REFUND_REQUESTED with a FAILED refund, starts a new REFUND (resume).

    Raises:
        OrderNotFound: no such order in the marketplace.
        DisputeAlreadyOpen: the order has an unresolved dispute (checked before the state).
        InvalidTransition: the order is not IN_PROGRESS, or an operation is running.
        EscrowNotReady: the escrow is not FUNDED.
    """
    return await _request(
        conn,
        registry,
        marketplace_id=marketplace_id,
        actor=actor,
        order_id=order_id,
        reason=reason,
        action=_REFUND,
    )


def _succeeded_hook(addresses: EscrowAddresses, party: str, tx_hash_key: str) -> Hook:
    """The SUCCEEDED hook of RELEASE (seller paid) or REFUND (buyer paid)."""
    release = party == "SELLER"

    async def hook(conn: asyncpg.Connection, operation: Operation) -> None:
        order = await lock_order(conn, operation.marketplace_id, operation.resource_id)
        escrow = await escrow_queries.lock_escrow(
            conn, operation.marketplace_id, str(operation.payload["escrow_id"])
        )
        assert escrow is not None
        share = Share(
            party="SELLER" if release else "BUYER",
            user_id=order.seller_id if release else order.buyer_id,
            gross_minor=escrow.amount_minor,
        )
        settlement = await settle_escrow(
            conn,
            order=order,
            escrow=escrow,
            operation=operation,
            addresses=addresses,
            shares=[share],
            tx_hash=operation.payload.get(tx_hash_key),
        )
        await conclude_settlement(
            conn,
            order=order,
            escrow=escrow,
            operation=operation,
            settlement=settlement,
            escrow_event="confirm_release" if release else "confirm_refund",
            order_event="confirm_release" if release else "confirm_refund",
        )

    return hook


def release_succeeded_hook(addresses: EscrowAddresses) -> Hook:
    """RELEASE succeeded: book the payout, escrow RELEASED, order RELEASED then CLOSED."""
    return _succeeded_hook(addresses, "SELLER", "release_tx_hash")


def refund_succeeded_hook(addresses: EscrowAddresses) -> Hook:
    """REFUND succeeded: book the payout, escrow REFUNDED, order REFUNDED then CLOSED."""
    return _succeeded_hook(addresses, "BUYER", "resolve_tx_hash")


async def _failed(conn: asyncpg.Connection, operation: Operation) -> None:
    order = await lock_order(conn, operation.marketplace_id, operation.resource_id)
    await emit_operation_failed(conn, order, operation)


async def on_release_failed(conn: asyncpg.Connection, operation: Operation) -> None:
    """RELEASE failed for good: the order stays RELEASE_REQUESTED; re-sending resumes."""
    await _failed(conn, operation)


async def on_refund_failed(conn: asyncpg.Connection, operation: Operation) -> None:
    """REFUND failed for good: the order stays REFUND_REQUESTED; re-sending resumes."""
    await _failed(conn, operation)
