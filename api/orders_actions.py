"""The long-running order actions (api.md 1.9, 3.5, 3.6) and opening a dispute.

Escrow deploy and funding, release and refund each start a durable operation inside
``run_mutation``'s transaction; ``finish`` then waits for it outside any transaction
(``api.orders_support.order_operation_reply``). A request that died after its effect committed
is answered on retry from the order's current state (``recover``). Registered by
``api.routes.orders.ORDERS_ROUTES``.
"""

from collections.abc import Awaitable, Callable
from typing import Any, Final

import asyncpg
from litestar import Request, Response, post
from litestar.params import FromPath, JSONBody

from api.auth import Caller, CurrentCaller, requires
from api.idempotency import Reply, run_mutation
from api.orders_support import order_operation_reply
from api.paths import API_PREFIX
from api.runtime import AppRuntime, get_runtime
from api.schemas.disputes import Dispute, dispute_out
from api.schemas.orders import DisputeOpen, Order, RefundBody, ReleaseBody
from flows import disputes, orders
from flows.order_escrow import start_escrow_create, start_escrow_fund
from flows.order_resolution import request_refund, request_release
from flows.order_views import Order as OrderView

__all__ = [
    "create_escrow",
    "fund_escrow",
    "open_order_dispute",
    "refund_order",
    "release_order",
]

_ORDER_PATH: Final = "/orders/{order_id:str}"


async def _long_running(
    request: Request[Any, Any, Any],
    caller: Caller,
    runtime: AppRuntime,
    order_id: str,
    start: Callable[[asyncpg.Connection], Awaitable[OrderView]],
    *,
    done_status: int = 200,
) -> Response[Any]:
    """Run ``start(conn) -> Order`` once per key, then answer from its operation's outcome."""

    async def recover(conn: asyncpg.Connection) -> OrderView:
        # The effect committed in a request that died: answer from the current state.
        return await orders.get_order(conn, marketplace_id=caller.tenant, order_id=order_id)

    async def finish(order: OrderView) -> Reply:
        return await order_operation_reply(
            request, runtime, caller.tenant, order, done_status=done_status
        )

    return await run_mutation(request, caller, start, finish=finish, recover=recover)


@post(f"{_ORDER_PATH}/escrow", guards=[requires("write")], status_code=201, tags=["orders"])
async def create_escrow(
    request: Request[Any, Any, Any], caller: CurrentCaller, order_id: FromPath[str]
) -> Response[Order]:
    """Deploy the escrow contract: 201 ``ESCROW_FUNDING`` when done within the wait, else 202."""
    runtime = get_runtime(request)

    async def start(conn: asyncpg.Connection) -> OrderView:
        return await start_escrow_create(
            conn,
            runtime.registry,
            marketplace_id=caller.tenant,
            actor=caller.actor,
            order_id=order_id,
        )

    return await _long_running(request, caller, runtime, order_id, start, done_status=201)


@post(f"{_ORDER_PATH}/escrow/fund", guards=[requires("write")], status_code=200, tags=["orders"])
async def fund_escrow(
    request: Request[Any, Any, Any], caller: CurrentCaller, order_id: FromPath[str]
) -> Response[Order]:
    """Fund the contract from the buyer's wallet: 200 ``IN_PROGRESS``, or 202 while it runs."""
    runtime = get_runtime(request)

    async def start(conn: asyncpg.Connection) -> OrderView:
        return await start_escrow_fund(
            conn,
            runtime.registry,
            marketplace_id=caller.tenant,
            actor=caller.actor,
            order_id=order_id,
        )

    return await _long_running(request, caller, runtime, order_id, start)


@post(
    [f"{_ORDER_PATH}/resolution/release", f"{_ORDER_PATH}/release"],
    guards=[requires("write")],
    status_code=200,
    tags=["orders"],
    opt={"canonical_path": "/orders/{order_id}/resolution/release"},
)
async def release_order(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    order_id: FromPath[str],
    data: JSONBody[ReleaseBody | None] = None,
) -> Response[Order]:
    """Release the escrow to the seller: 200 ``CLOSED`` (RELEASED), or 202 while it runs."""
    runtime = get_runtime(request)
    reason = None if data is None else data.reason

    async def start(conn: asyncpg.Connection) -> OrderView:
        return await request_release(
            conn,
            runtime.registry,
            marketplace_id=caller.tenant,
            actor=caller.actor,
            order_id=order_id,
            reason=reason,
        )

    return await _long_running(request, caller, runtime, order_id, start)


@post(
    [f"{_ORDER_PATH}/resolution/refund", f"{_ORDER_PATH}/refund"],
    guards=[requires("write")],
    status_code=200,
    tags=["orders"],
    opt={"canonical_path": "/orders/{order_id}/resolution/refund"},
)
async def refund_order(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    order_id: FromPath[str],
    data: JSONBody[RefundBody],
) -> Response[Order]:
    """Refund the escrow to the buyer: 200 ``CLOSED`` (REFUNDED), or 202 while it runs."""
    runtime = get_runtime(request)

    async def start(conn: asyncpg.Connection) -> OrderView:
        return await request_refund(
            conn,
            runtime.registry,
            marketplace_id=caller.tenant,
            actor=caller.actor,
            order_id=order_id,
            reason=data.reason,
        )

    return await _long_running(request, caller, runtime, order_id, start)


@post(
    [f"{_ORDER_PATH}/resolution/dispute", f"{_ORDER_PATH}/disputes"],
    guards=[requires("write")],
    status_code=201,
    tags=["disputes"],
    opt={"canonical_path": "/orders/{order_id}/resolution/dispute"},
)
async def open_order_dispute(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    order_id: FromPath[str],
    data: JSONBody[DisputeOpen],
) -> Response[Dispute]:
    """Open a dispute: dispute ``OPEN``, order and escrow ``DISPUTED`` (nothing on chain yet)."""

    async def work(conn: asyncpg.Connection) -> Dispute:
        dispute = await disputes.open_dispute(
            conn,
            marketplace_id=caller.tenant,
            actor=caller.actor,
            order_id=order_id,
            opened_by=data.opened_by,
            reason=data.reason,
            description=data.description,
            evidence=data.evidence or (),
        )
        return dispute_out(dispute)

    return await run_mutation(
        request,
        caller,
        work,
        status_code=201,
        location=lambda dispute: f"{API_PREFIX}/disputes/{dispute.id}",
    )
