"""Orders (api.md 3.5): create, read, list, reserve, cancel, complete a milestone; the hooks.

Each function runs in the caller's transaction: it locks the order, fires the state machine,
posts the ledger transfers and writes the outbox events together, so status and money never
disagree. The escrow actions live in ``flows.order_escrow``, release and refund in
``flows.order_resolution``, disputes in ``flows.disputes`` / ``flows.dispute_resolution``;
:func:`order_hooks` gathers the operation hooks of all of them for the worker.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from common.errors import (
    InvalidAmount,
    InvalidRequest,
    MilestoneNotFound,
    OrderAlreadyExists,
    UserNotFound,
    ValidationFailed,
)
from common.ids import new_id
from common.money import format_amount
from common.times import format_time
from flows.audit import record_audit
from flows.dispute_resolution import on_resolve_failed, resolve_succeeded_hook
from flows.events import emit
from flows.operations import OperationHooks
from flows.order_escrow import (
    on_create_failed,
    on_create_succeeded,
    on_fund_failed,
    on_fund_succeeded,
)
from flows.order_reservation import cancel_order, reserve_order
from flows.order_resolution import (
    on_refund_failed,
    on_release_failed,
    refund_succeeded_hook,
    release_succeeded_hook,
)
from flows.order_settlement import EscrowAddresses
from flows.order_support import (
    ASSET,
    CURRENCY,
    emit_order,
    load_order,
    lock_order,
    require_status,
)
from flows.order_views import Milestone, Order, OrderPage, load_orders, milestone_view
from flows.queries import escrows as escrow_queries
from flows.queries import orders as queries
from flows.queries.operations import OperationKind
from flows.queries.orders import OrderFilters, OrderRow
from flows.transitions import Actor, fire
from ledger.accounts import escrow_account, open_account
from statemachines import OrderStatus

__all__ = [
    "EscrowAddresses",
    "MilestoneInput",
    "OrderFilters",
    "cancel_order",
    "complete_milestone",
    "create_order",
    "get_order",
    "list_orders",
    "order_hooks",
    "reserve_order",
]

_MILESTONES_MAX = 50


class MilestoneInput(msgspec.Struct, frozen=True, kw_only=True):
    """A milestone of a new order."""

    milestone_ref: str
    title: str
    amount_minor: int


def _check_terms(
    buyer_id: str, seller_id: str, amount_minor: int, milestones: Sequence[MilestoneInput] | None
) -> None:
    """The rules of api.md 3.5 that need no database."""
    if buyer_id == seller_id:
        raise InvalidRequest("buyer and seller must be different users", field="seller_id")
    if amount_minor <= 0:
        raise InvalidAmount("the amount must be positive", field="amount")
    if milestones is None:
        return
    if not 1 <= len(milestones) <= _MILESTONES_MAX:
        raise ValidationFailed(
            fields=[{"field": "milestones", "message": f"must have 1..{_MILESTONES_MAX} items"}]
        )
    refs = [m.milestone_ref for m in milestones]
    if len(set(refs)) != len(refs):
        raise InvalidRequest("milestone_ref values must be unique", field="milestones")
    if any(m.amount_minor <= 0 for m in milestones):
        raise InvalidAmount("milestone amounts must be positive", field="milestones")
    total = sum(m.amount_minor for m in milestones)
    if total != amount_minor:
        raise InvalidAmount(
            "milestone amounts must add up to the order amount",
            amount=format_amount(amount_minor),
            milestones_total=format_amount(total),
        )


async def _insert(conn: asyncpg.Connection, marketplace_id: str, **fields: Any) -> OrderRow:
    """Insert the order row; ``OrderAlreadyExists`` when its client_order_ref is taken."""
    ref = fields["client_order_ref"]
    existing = None if ref is None else await queries.get_order_by_ref(conn, marketplace_id, ref)
    row = None
    if existing is None:
        row = await queries.insert_order(conn, marketplace_id=marketplace_id, **fields)
        if row is None:
            # A concurrent request took the ref between our read and our insert.
            existing = await queries.get_order_by_ref(conn, marketplace_id, ref)
    if row is None:
        assert existing is not None
        raise OrderAlreadyExists(order_id=existing.id, client_order_ref=ref)
    return row


async def create_order(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    actor: Actor,
    buyer_id: str,
    seller_id: str,
    amount_minor: int,
    title: str,
    description: str | None = None,
    client_order_ref: str | None = None,
    milestones: Sequence[MilestoneInput] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Order:
    """Create an ORDER_CREATED order with its milestones and its ``escrow:<ord>`` account.

    ``actor`` is who created it: creation has no transition row, it is audited
    ``ORDER_CREATED``.

    Raises:
        InvalidRequest: buyer = seller, or duplicate milestone refs.
        InvalidAmount: a non-positive amount, or milestones not adding up to the amount.
        ValidationFailed: not 1..50 milestones.
        UserNotFound: the buyer or the seller is not a user of the marketplace.
        OrderAlreadyExists: ``client_order_ref`` is taken (``details.order_id``).
    """
    _check_terms(buyer_id, seller_id, amount_minor, milestones)
    present = await queries.users_present(conn, marketplace_id, [buyer_id, seller_id])
    for field, user_id in (("buyer_id", buyer_id), ("seller_id", seller_id)):
        if user_id not in present:
            raise UserNotFound(field=field, user_id=user_id)
    order = await _insert(
        conn,
        marketplace_id,
        order_id=new_id("ord_"),
        client_order_ref=client_order_ref,
        buyer_id=buyer_id,
        seller_id=seller_id,
        amount_minor=amount_minor,
        title=title,
        description=description,
        metadata=metadata,
    )
    for position, milestone in enumerate(milestones or ()):
        await queries.insert_milestone(
            conn,
            marketplace_id=marketplace_id,
            milestone_id=new_id("ms_"),
            order_id=order.id,
            milestone_ref=milestone.milestone_ref,
            title=milestone.title,
            amount_minor=milestone.amount_minor,
            position=position,
        )
    await open_account(conn, marketplace_id, ASSET, escrow_account(order.id))
    await emit_order(
        conn,
        order,
        "order.created",
        {
            "buyer_id": buyer_id,
            "seller_id": seller_id,
            "amount": format_amount(amount_minor),
            "currency": CURRENCY,
            "title": title,
            "client_order_ref": client_order_ref,
        },
    )
    await record_audit(
        conn,
        marketplace_id=marketplace_id,
        actor_type=actor.type,
        actor_id=actor.id,
        action="ORDER_CREATED",
        resource_type="order",
        resource_id=order.id,
        after={
            "status": order.status,
            "buyer_id": buyer_id,
            "seller_id": seller_id,
            "amount": format_amount(amount_minor),
            "client_order_ref": client_order_ref,
            "milestones": [m.milestone_ref for m in milestones or ()],
        },
        request_id=actor.request_id,
    )
    return await load_order(conn, marketplace_id, order.id)


async def get_order(conn: asyncpg.Connection, *, marketplace_id: str, order_id: str) -> Order:
    """One order with its milestones, latest escrow, latest dispute and latest operation.

    Raises:
        OrderNotFound: no such order in the marketplace.
    """
    return await load_order(conn, marketplace_id, order_id)


async def list_orders(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    filters: OrderFilters,
    after: tuple[datetime, str] | None = None,
    limit: int = 20,
) -> OrderPage:
    """A page of orders, newest first (``created_at`` desc, ``id`` desc), after ``after``.

    ``after`` is the ``(created_at, id)`` of the previous page's last order.
    """
    rows = await queries.list_orders(conn, marketplace_id, filters, after=after, limit=limit + 1)
    orders = await load_orders(conn, marketplace_id, rows[:limit])
    return OrderPage(data=orders, has_more=len(rows) > limit)


async def complete_milestone(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    actor: Actor,
    order_id: str,
    milestone_ref: str,
) -> Milestone:
    """Mark an OPEN milestone of an IN_PROGRESS order COMPLETED (locally; on chain at release).

    Raises:
        OrderNotFound: no such order in the marketplace.
        MilestoneNotFound: the order has no milestone with this ref.
        InvalidTransition: the order is not IN_PROGRESS, or the milestone is COMPLETED.
    """
    order = await lock_order(conn, marketplace_id, order_id)
    milestone = await queries.lock_milestone(conn, marketplace_id, order.id, milestone_ref)
    if milestone is None:
        raise MilestoneNotFound(order_id=order.id, milestone_ref=milestone_ref)
    require_status("order", order.id, order.status, [OrderStatus.IN_PROGRESS.value])
    await fire(
        conn,
        "milestone",
        marketplace_id=marketplace_id,
        resource_id=milestone.id,
        current=milestone.status,
        event="complete",
        actor=actor,
    )
    completed = await queries.set_milestone_completed(conn, marketplace_id, milestone.id)
    escrow = await escrow_queries.live_escrow(conn, marketplace_id, order.id)
    assert escrow is not None, f"order {order.id} is IN_PROGRESS without an escrow"
    assert completed.completed_at is not None
    await emit(
        conn,
        marketplace_id=marketplace_id,
        type="escrow.milestone_completed",
        resource_type="escrow",
        resource_id=escrow.id,
        data={
            "escrow_id": escrow.id,
            "order_id": order.id,
            "milestone_ref": completed.milestone_ref,
            "milestone_title": completed.title,
            "amount": format_amount(completed.amount_minor),
            "completed_at": format_time(completed.completed_at),
        },
    )
    return milestone_view(completed)


def order_hooks(addresses: EscrowAddresses) -> dict[OperationKind, OperationHooks]:
    """The end-of-operation hooks of the five escrow kinds, for ``OperationWorker``.

    ``addresses`` tells the settlement hooks which payout addresses are the fee accounts.
    """
    return {
        OperationKind.ESCROW_CREATE: OperationHooks(
            on_succeeded=on_create_succeeded, on_failed=on_create_failed
        ),
        OperationKind.ESCROW_FUND: OperationHooks(
            on_succeeded=on_fund_succeeded, on_failed=on_fund_failed
        ),
        OperationKind.RELEASE: OperationHooks(
            on_succeeded=release_succeeded_hook(addresses), on_failed=on_release_failed
        ),
        OperationKind.REFUND: OperationHooks(
            on_succeeded=refund_succeeded_hook(addresses), on_failed=on_refund_failed
        ),
        OperationKind.DISPUTE_RESOLVE: OperationHooks(
            on_succeeded=resolve_succeeded_hook(addresses), on_failed=on_resolve_failed
        ),
    }
