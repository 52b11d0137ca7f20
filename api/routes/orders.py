"""Orders and milestones (api.md 3.5): create, read, list, reserve, cancel, complete.

The long-running actions (escrow, fund, release, refund) and opening a dispute live in
``api.orders_actions``; :data:`ORDERS_ROUTES` gathers them all. Ids of another marketplace, and
ids of the wrong prefix, answer 404 ``ORDER_NOT_FOUND`` like any unknown id.
"""

from typing import Any, Final

import asyncpg
import msgspec
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody

from api.auth import CurrentCaller, requires
from api.database import read
from api.idempotency import run_mutation
from api.orders_actions import (
    create_escrow,
    fund_escrow,
    open_order_dispute,
    refund_order,
    release_order,
)
from api.orders_support import (
    check_metadata,
    check_order_amount,
    order_location,
    status_filter,
    time_filter,
)
from api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, PageInfo, page_of, page_request
from api.schemas import amount_minor
from api.schemas.orders import (
    CancelBody,
    Milestone,
    Order,
    OrderCreate,
    ReserveBody,
    milestone_out,
    order_out,
)
from flows import orders
from flows.orders import MilestoneInput, OrderFilters
from statemachines import OrderStatus

__all__ = [
    "ORDERS_ROUTES",
    "cancel_order",
    "complete_milestone",
    "create_order",
    "get_order",
    "list_milestones",
    "list_orders",
    "reserve_order",
]

_ORDER_STATUSES: Final = tuple(status.value for status in OrderStatus)
_ORDER_PATH: Final = "/orders/{order_id:str}"


@post("/orders", guards=[requires("write")], status_code=201, tags=["orders"])
async def create_order(
    request: Request[Any, Any, Any], caller: CurrentCaller, data: JSONBody[OrderCreate]
) -> Response[Order]:
    """Create an order (``ORDER_CREATED``), with its milestones if any."""
    amount = amount_minor(data.amount)
    check_order_amount(amount)
    check_metadata(data.metadata)
    milestones = None
    if data.milestones is not None:
        milestones = [
            MilestoneInput(
                milestone_ref=item.milestone_ref,
                title=item.title,
                amount_minor=amount_minor(item.amount),
            )
            for item in data.milestones
        ]

    async def work(conn: asyncpg.Connection) -> Order:
        order = await orders.create_order(
            conn,
            marketplace_id=caller.tenant,
            actor=caller.actor,
            buyer_id=data.buyer_id,
            seller_id=data.seller_id,
            amount_minor=amount,
            title=data.title,
            description=data.description,
            client_order_ref=data.client_order_ref,
            milestones=milestones,
            metadata=data.metadata,
        )
        return order_out(order)

    return await run_mutation(
        request, caller, work, status_code=201, location=lambda order: order_location(order.id)
    )


@get("/orders", guards=[requires("read")], tags=["orders"])
async def list_orders(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    *,
    status: FromQuery[str | None] = None,
    buyer_id: FromQuery[str | None] = None,
    seller_id: FromQuery[str | None] = None,
    user_id: FromQuery[str | None] = None,
    client_order_ref: FromQuery[str | None] = None,
    created_after: FromQuery[str | None] = None,
    created_before: FromQuery[str | None] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[Order]:
    """List orders, newest first; filters combine with AND."""
    filters = OrderFilters(
        statuses=status_filter("status", status, _ORDER_STATUSES),
        buyer_id=buyer_id,
        seller_id=seller_id,
        user_id=user_id,
        client_order_ref=client_order_ref,
        created_after=time_filter("created_after", created_after),
        created_before=time_filter("created_before", created_before),
    )
    position = page_request(
        request, limit=limit, cursor=cursor, filters=msgspec.to_builtins(filters)
    )

    async def fetch(conn: asyncpg.Connection) -> Page[Order]:
        page = await orders.list_orders(
            conn,
            marketplace_id=caller.tenant,
            filters=filters,
            after=position.after,
            limit=position.fetch_limit,
        )
        return page_of(position, page.data, order_out)

    return await read(request, fetch)


@get(_ORDER_PATH, guards=[requires("read")], tags=["orders"])
async def get_order(
    request: Request[Any, Any, Any], caller: CurrentCaller, order_id: FromPath[str]
) -> Order:
    """One order with its milestones, latest escrow, dispute and operation."""

    async def fetch(conn: asyncpg.Connection) -> Order:
        order = await orders.get_order(conn, marketplace_id=caller.tenant, order_id=order_id)
        return order_out(order)

    return await read(request, fetch)


@post(f"{_ORDER_PATH}/reserve", guards=[requires("write")], status_code=200, tags=["orders"])
async def reserve_order(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    order_id: FromPath[str],
    data: JSONBody[ReserveBody | None] = None,
) -> Response[Order]:
    """Reserve the order amount from the buyer's available balance (``FUNDS_RESERVED``)."""
    amount = None if data is None or data.amount is None else amount_minor(data.amount)

    async def work(conn: asyncpg.Connection) -> Order:
        order = await orders.reserve_order(
            conn,
            marketplace_id=caller.tenant,
            actor=caller.actor,
            order_id=order_id,
            amount_minor=amount,
        )
        return order_out(order)

    return await run_mutation(request, caller, work)


@post(f"{_ORDER_PATH}/cancel", guards=[requires("write")], status_code=200, tags=["orders"])
async def cancel_order(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    order_id: FromPath[str],
    data: JSONBody[CancelBody | None] = None,
) -> Response[Order]:
    """Cancel before the escrow: the reservation (if any) is voided; ``CLOSED`` (CANCELED)."""
    reason = None if data is None else data.reason

    async def work(conn: asyncpg.Connection) -> Order:
        order = await orders.cancel_order(
            conn,
            marketplace_id=caller.tenant,
            actor=caller.actor,
            order_id=order_id,
            reason=reason,
        )
        return order_out(order)

    return await run_mutation(request, caller, work)


@get(f"{_ORDER_PATH}/milestones", guards=[requires("read")], tags=["orders"])
async def list_milestones(
    request: Request[Any, Any, Any], caller: CurrentCaller, order_id: FromPath[str]
) -> Page[Milestone]:
    """Every milestone of the order, in creation order, on one page."""

    async def fetch(conn: asyncpg.Connection) -> Page[Milestone]:
        order = await orders.get_order(conn, marketplace_id=caller.tenant, order_id=order_id)
        return Page(
            data=[milestone_out(milestone) for milestone in order.milestones],
            pagination=PageInfo(has_more=False, next_cursor=None),
        )

    return await read(request, fetch)


@post(
    f"{_ORDER_PATH}/milestones/{{milestone_ref:str}}/complete",
    guards=[requires("write")],
    status_code=200,
    tags=["orders"],
)
async def complete_milestone(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    order_id: FromPath[str],
    milestone_ref: FromPath[str],
) -> Response[Milestone]:
    """Mark an OPEN milestone of an ``IN_PROGRESS`` order ``COMPLETED``."""

    async def work(conn: asyncpg.Connection) -> Milestone:
        milestone = await orders.complete_milestone(
            conn,
            marketplace_id=caller.tenant,
            actor=caller.actor,
            order_id=order_id,
            milestone_ref=milestone_ref,
        )
        return milestone_out(milestone)

    return await run_mutation(request, caller, work)


ORDERS_ROUTES: Final[tuple[HTTPRouteHandler, ...]] = (
    create_order,
    list_orders,
    get_order,
    reserve_order,
    cancel_order,
    create_escrow,
    fund_escrow,
    list_milestones,
    complete_milestone,
    release_order,
    refund_order,
    open_order_dispute,
)
