"""Resolving a dispute on chain (api.md 3.6): the decision, its operation and the hooks.

``resolve_dispute`` records the decision on the UNDER_REVIEW dispute and starts
DISPUTE_RESOLVE; the dispute becomes RESOLVED only when the distribution is confirmed. A
FAILED resolution resumes when the same decision is sent again; another decision is
INVALID_STATE, as is any resolve while one is running.
"""

from collections.abc import Awaitable, Callable
from typing import Final

import asyncpg

from common.errors import DisputeNotFound, InvalidAmount, InvalidRequest, InvalidTransition
from common.money import format_amount
from common.times import format_time
from flows.audit import record_audit
from flows.disputes import ResolutionStarted, emit_dispute, fire_dispute, view
from flows.operations import Registry, start_operation
from flows.order_settlement import EscrowAddresses, Share, conclude_settlement, settle_escrow
from flows.order_support import (
    emit_operation_failed,
    lock_order,
    party_wallets,
    require_status,
)
from flows.queries import disputes as queries
from flows.queries import escrows as escrow_queries
from flows.queries.disputes import DisputeRow
from flows.queries.escrows import EscrowRow
from flows.queries.operations import Operation, OperationKind, OperationStatus
from flows.queries.orders import OrderRow
from flows.transitions import Actor, next_status
from statemachines import EscrowStatus

__all__ = ["on_resolve_failed", "resolve_dispute", "resolve_succeeded_hook"]

Hook = Callable[[asyncpg.Connection, Operation], Awaitable[None]]

# decision -> (escrow event, order event) once the distribution is confirmed on chain.
_OUTCOMES: Final[dict[str, tuple[str, str]]] = {
    "FULL_RELEASE": ("resolve_full_release", "resolve_full_release"),
    "FULL_REFUND": ("resolve_full_refund", "resolve_full_refund"),
    "SPLIT": ("resolve_split", "resolve_split"),
}


def _decision_amounts(
    decision: str, release_minor: int | None, refund_minor: int | None, escrow_minor: int
) -> tuple[int, int]:
    """Gross (to the seller, to the buyer) of a decision, checked against the escrowed amount."""
    if decision != "SPLIT":
        if release_minor is not None or refund_minor is not None:
            raise InvalidRequest("amounts are accepted only with a SPLIT decision")
        return (escrow_minor, 0) if decision == "FULL_RELEASE" else (0, escrow_minor)
    release, refund = release_minor or 0, refund_minor or 0
    if release <= 0 or refund <= 0 or release + refund != escrow_minor:
        raise InvalidAmount(
            "both SPLIT amounts must be positive and add up to the escrowed amount",
            escrow_amount=format_amount(escrow_minor),
            total=format_amount(release + refund),
        )
    return release, refund


async def _latest_resolution(conn: asyncpg.Connection, order: OrderRow) -> Operation | None:
    latest = (
        await escrow_queries.latest_operations_of_orders(conn, order.marketplace_id, [order.id])
    ).get(order.id)
    return latest if latest is not None and latest.kind is OperationKind.DISPUTE_RESOLVE else None


def _refuse(dispute: DisputeRow, message: str, **details: object) -> InvalidTransition:
    return InvalidTransition(
        message,
        resource_type="dispute",
        resource_id=dispute.id,
        current_state=dispute.status,
        allowed_states=["UNDER_REVIEW"],
        **details,
    )


async def _record_decision(
    conn: asyncpg.Connection,
    dispute: DisputeRow,
    order: OrderRow,
    *,
    decision: str,
    amounts: tuple[int, int],
    note: str | None,
    actor: Actor,
) -> DisputeRow:
    """Record the decision, or accept the same one again after a FAILED resolution."""
    if dispute.resolution_decision is None:
        return await queries.set_decision(
            conn,
            dispute.marketplace_id,
            dispute.id,
            decision=decision,
            release_amount_minor=amounts[0],
            refund_amount_minor=amounts[1],
            note=note,
            resolved_by=actor.id,
        )
    recorded = (
        dispute.resolution_decision,
        (dispute.release_amount_minor, dispute.refund_amount_minor),
    )
    if recorded != (decision, amounts):
        raise _refuse(
            dispute,
            "another decision is already recorded",
            resolution_decision=dispute.resolution_decision,
        )
    latest = await _latest_resolution(conn, order)
    if latest is not None and latest.status is not OperationStatus.FAILED:
        raise _refuse(dispute, "the resolution is already running", operation_id=latest.id)
    return dispute


async def _start(
    conn: asyncpg.Connection,
    registry: Registry,
    order: OrderRow,
    escrow: EscrowRow,
    dispute: DisputeRow,
) -> Operation:
    buyer_wallet, seller_wallet = await party_wallets(conn, order)
    opener = buyer_wallet if dispute.opened_by == "BUYER" else seller_wallet
    return await start_operation(
        conn,
        registry,
        marketplace_id=order.marketplace_id,
        kind=OperationKind.DISPUTE_RESOLVE,
        resource_type="order",
        resource_id=order.id,
        payload={
            "order_id": order.id,
            "escrow_id": escrow.id,
            "contract_id": escrow.contract_id,
            "opener_wallet_id": opener.id,
            "buyer_wallet_id": buyer_wallet.id,
            "seller_wallet_id": seller_wallet.id,
            "release_amount_minor": dispute.release_amount_minor,
            "refund_amount_minor": dispute.refund_amount_minor,
        },
    )


async def resolve_dispute(
    conn: asyncpg.Connection,
    registry: Registry,
    *,
    marketplace_id: str,
    actor: Actor,
    dispute_id: str,
    decision: str,
    release_amount_minor: int | None = None,
    refund_amount_minor: int | None = None,
    note: str | None = None,
) -> ResolutionStarted:
    """Accept a decision and start distributing the escrow on chain.

    FULL_RELEASE pays the whole escrow to the seller, FULL_REFUND to the buyer, SPLIT the
    given gross amounts to each (fees pro rata, taken by the contract).

    Raises:
        DisputeNotFound: no such dispute in the marketplace.
        InvalidRequest: an unknown decision, or amounts with a FULL_* decision.
        InvalidTransition: the dispute is not UNDER_REVIEW, another decision is recorded, or
            the resolution is already running.
        InvalidAmount: SPLIT amounts not both positive or not summing to the escrowed amount.
    """
    if decision not in _OUTCOMES:
        raise InvalidRequest("unknown decision", field="decision", decision=decision)
    found = await queries.get_dispute(conn, marketplace_id, dispute_id)
    if found is None:
        raise DisputeNotFound(dispute_id=dispute_id)
    # Order before dispute: the lock order of every order flow and hook.
    order = await lock_order(conn, marketplace_id, found.order_id)
    dispute = await queries.lock_dispute(conn, marketplace_id, dispute_id)
    assert dispute is not None
    next_status("dispute", dispute.status, "resolve", dispute.id)
    escrow = await escrow_queries.live_escrow(conn, marketplace_id, order.id)
    assert escrow is not None, f"disputed order {order.id} has no escrow"
    require_status("escrow", escrow.id, escrow.status, [EscrowStatus.DISPUTED.value])
    amounts = _decision_amounts(
        decision, release_amount_minor, refund_amount_minor, escrow.amount_minor
    )
    dispute = await _record_decision(
        conn, dispute, order, decision=decision, amounts=amounts, note=note, actor=actor
    )
    operation = await _start(conn, registry, order, escrow, dispute)
    # The dispute stays UNDER_REVIEW until the chain confirms (DISPUTE_RESOLVED, by the hook).
    await record_audit(
        conn,
        marketplace_id=marketplace_id,
        actor_type=actor.type,
        actor_id=actor.id,
        action="DISPUTE_RESOLUTION_STARTED",
        resource_type="dispute",
        resource_id=dispute.id,
        after={
            "decision": decision,
            "release_amount": format_amount(amounts[0]),
            "refund_amount": format_amount(amounts[1]),
            "note": note,
            "operation_id": operation.id,
        },
        request_id=actor.request_id,
    )
    return ResolutionStarted(dispute=view(dispute), operation=operation)


def _shares(order: OrderRow, dispute: DisputeRow) -> list[Share]:
    """The paid parties of the recorded decision, seller first."""
    shares = []
    if dispute.release_amount_minor:
        shares.append(
            Share(party="SELLER", user_id=order.seller_id, gross_minor=dispute.release_amount_minor)
        )
    if dispute.refund_amount_minor:
        shares.append(
            Share(party="BUYER", user_id=order.buyer_id, gross_minor=dispute.refund_amount_minor)
        )
    return shares


def resolve_succeeded_hook(addresses: EscrowAddresses) -> Hook:
    """DISPUTE_RESOLVE succeeded: book the distribution, dispute RESOLVED, order CLOSED."""

    async def hook(conn: asyncpg.Connection, operation: Operation) -> None:
        order = await lock_order(conn, operation.marketplace_id, operation.resource_id)
        dispute = await queries.unresolved_dispute(conn, order.marketplace_id, order.id)
        escrow = await escrow_queries.lock_escrow(
            conn, order.marketplace_id, str(operation.payload["escrow_id"])
        )
        assert dispute is not None
        assert dispute.resolution_decision is not None
        assert escrow is not None
        settlement = await settle_escrow(
            conn,
            order=order,
            escrow=escrow,
            operation=operation,
            addresses=addresses,
            shares=_shares(order, dispute),
            tx_hash=operation.payload.get("resolve_tx_hash"),
        )
        await fire_dispute(conn, dispute, "resolve", Actor(type="PROVIDER", id=operation.id))
        resolved = await queries.set_resolved(conn, dispute.marketplace_id, dispute.id)
        await _emit_resolved(conn, resolved)
        escrow_event, order_event = _OUTCOMES[dispute.resolution_decision]
        await conclude_settlement(
            conn,
            order=order,
            escrow=escrow,
            operation=operation,
            settlement=settlement,
            escrow_event=escrow_event,
            order_event=order_event,
        )

    return hook


async def _emit_resolved(conn: asyncpg.Connection, dispute: DisputeRow) -> None:
    assert dispute.resolved_at is not None
    assert dispute.release_amount_minor is not None
    assert dispute.refund_amount_minor is not None
    await emit_dispute(
        conn,
        dispute,
        "dispute.resolved",
        {
            "decision": dispute.resolution_decision,
            "release_amount": format_amount(dispute.release_amount_minor),
            "refund_amount": format_amount(dispute.refund_amount_minor),
            "decision_note": dispute.decision_note,
            "resolved_by": dispute.resolved_by,
            "resolved_at": format_time(dispute.resolved_at),
        },
    )


async def on_resolve_failed(conn: asyncpg.Connection, operation: Operation) -> None:
    """DISPUTE_RESOLVE failed for good: the order stays DISPUTED, the decision recorded."""
    order = await lock_order(conn, operation.marketplace_id, operation.resource_id)
    await emit_operation_failed(conn, order, operation)
