"""Disputes (api.md 3.6, 5.4): open, assign, read; the views shared with the resolution.

Opening freezes the order and escrow (both DISPUTED) locally; the chain is touched only when a
support agent resolves (``flows.dispute_resolution``): the decision is recorded on the dispute
and a DISPUTE_RESOLVE operation has the opening party flag the contract and the platform
distribute it.
"""

from collections.abc import Sequence
from datetime import datetime

import asyncpg
import msgspec

from common.errors import DisputeAlreadyOpen, DisputeNotFound
from common.ids import new_id
from common.times import format_time
from flows.audit import record_audit
from flows.events import emit
from flows.order_support import (
    emit_order,
    fire_order,
    lock_order,
)
from flows.queries import disputes as queries
from flows.queries import escrows as escrow_queries
from flows.queries.disputes import DisputeFilters, DisputeRow
from flows.queries.escrows import EscrowRow
from flows.queries.operations import Operation
from flows.transitions import Actor, fire, next_status

__all__ = [
    "Dispute",
    "DisputeFilters",
    "DisputePage",
    "ResolutionStarted",
    "assign_dispute",
    "emit_dispute",
    "fire_dispute",
    "get_dispute",
    "list_disputes",
    "open_dispute",
    "view",
]


class Dispute(msgspec.Struct, frozen=True, kw_only=True):
    """A dispute (api.md 4); amounts are gross, to the seller (release) and the buyer."""

    id: str
    order_id: str
    status: str
    opened_by: str
    reason: str
    description: str | None
    evidence: list[str]
    assigned_to: str | None
    resolution_decision: str | None
    release_amount_minor: int | None
    refund_amount_minor: int | None
    decision_note: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DisputePage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of disputes, newest first."""

    data: list[Dispute]
    has_more: bool


class ResolutionStarted(msgspec.Struct, frozen=True, kw_only=True):
    """An accepted resolution: the dispute with its decision, and the operation settling it."""

    dispute: Dispute
    operation: Operation


def view(row: DisputeRow) -> Dispute:
    """The Dispute view of a row."""
    fields = msgspec.structs.asdict(row)
    del fields["marketplace_id"]
    return Dispute(**fields)


async def emit_dispute(
    conn: asyncpg.Connection, dispute: DisputeRow, type: str, data: dict[str, object]
) -> None:
    """Write a ``dispute.*`` event; ``dispute_id`` and ``order_id`` lead the data."""
    await emit(
        conn,
        marketplace_id=dispute.marketplace_id,
        type=type,
        resource_type="dispute",
        resource_id=dispute.id,
        data={"dispute_id": dispute.id, "order_id": dispute.order_id, **data},
    )


async def _fire_escrow(
    conn: asyncpg.Connection, escrow: EscrowRow, event: str, actor: Actor
) -> None:
    await fire(
        conn,
        "escrow",
        marketplace_id=escrow.marketplace_id,
        resource_id=escrow.id,
        current=escrow.status,
        event=event,
        actor=actor,
    )


async def fire_dispute(
    conn: asyncpg.Connection, dispute: DisputeRow, event: str, actor: Actor
) -> None:
    """Fire ``event`` on the locked dispute."""
    await fire(
        conn,
        "dispute",
        marketplace_id=dispute.marketplace_id,
        resource_id=dispute.id,
        current=dispute.status,
        event=event,
        actor=actor,
    )


async def open_dispute(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    actor: Actor,
    order_id: str,
    opened_by: str,
    reason: str,
    description: str | None = None,
    evidence: Sequence[str] = (),
) -> Dispute:
    """Open a dispute on an IN_PROGRESS order: dispute OPEN, order and escrow DISPUTED.

    Raises:
        OrderNotFound: no such order in the marketplace.
        DisputeAlreadyOpen: the order has an unresolved dispute (checked before the state).
        InvalidTransition: the order is not IN_PROGRESS (or its escrow is not FUNDED).
    """
    order = await lock_order(conn, marketplace_id, order_id)
    existing = await queries.unresolved_dispute(conn, marketplace_id, order.id)
    if existing is not None:
        raise DisputeAlreadyOpen(order_id=order.id, dispute_id=existing.id)
    next_status("order", order.status, "open_dispute", order.id)
    escrow = await escrow_queries.live_escrow(conn, marketplace_id, order.id)
    assert escrow is not None, f"order {order.id} is IN_PROGRESS without an escrow"
    await _fire_escrow(conn, escrow, "open_dispute", actor)
    dispute = await queries.insert_dispute(
        conn,
        marketplace_id=marketplace_id,
        dispute_id=new_id("dsp_"),
        order_id=order.id,
        opened_by=opened_by,
        reason=reason,
        description=description,
        evidence=list(evidence),
    )
    await record_audit(
        conn,
        marketplace_id=marketplace_id,
        actor_type=actor.type,
        actor_id=actor.id,
        action="DISPUTE_OPENED",
        resource_type="dispute",
        resource_id=dispute.id,
        after={
            "status": dispute.status,
            "order_id": order.id,
            "opened_by": opened_by,
            "reason": reason,
        },
        request_id=actor.request_id,
    )
    order = await fire_order(conn, order, "open_dispute", actor)
    await emit_dispute(
        conn,
        dispute,
        "dispute.opened",
        {"opened_by": opened_by, "reason": reason, "opened_at": format_time(dispute.created_at)},
    )
    await emit_order(
        conn,
        order,
        "order.disputed",
        {"dispute_id": dispute.id, "opened_by": opened_by, "reason": reason},
    )
    return view(dispute)


async def assign_dispute(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    actor: Actor,
    dispute_id: str,
    assigned_to: str,
) -> Dispute:
    """Assign (or re-assign) a reviewer: OPEN or UNDER_REVIEW -> UNDER_REVIEW.

    Raises:
        DisputeNotFound: no such dispute in the marketplace.
        InvalidTransition: the dispute is RESOLVED.
    """
    dispute = await queries.lock_dispute(conn, marketplace_id, dispute_id)
    if dispute is None:
        raise DisputeNotFound(dispute_id=dispute_id)
    await fire_dispute(conn, dispute, "assign", actor)
    dispute = await queries.set_assignee(conn, marketplace_id, dispute.id, assigned_to)
    await emit_dispute(
        conn,
        dispute,
        "dispute.under_review",
        {"reviewed_by": assigned_to, "review_started_at": format_time(dispute.updated_at)},
    )
    return view(dispute)


async def get_dispute(conn: asyncpg.Connection, *, marketplace_id: str, dispute_id: str) -> Dispute:
    """One dispute.

    Raises:
        DisputeNotFound: no such dispute in the marketplace.
    """
    dispute = await queries.get_dispute(conn, marketplace_id, dispute_id)
    if dispute is None:
        raise DisputeNotFound(dispute_id=dispute_id)
    return view(dispute)


async def list_disputes(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    filters: DisputeFilters,
    after: tuple[datetime, str] | None = None,
    limit: int = 20,
) -> DisputePage:
    """A page of disputes, newest first (``created_at`` desc, ``id`` desc), after ``after``.

    ``after`` is the ``(created_at, id)`` of the previous page's last dispute.
    """
    rows = await queries.list_disputes(conn, marketplace_id, filters, after=after, limit=limit + 1)
    return DisputePage(data=[view(row) for row in rows[:limit]], has_more=len(rows) > limit)
