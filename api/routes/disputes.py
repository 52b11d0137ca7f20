"""Disputes (api.md 3.6): list, read, assign a reviewer, resolve.

Opening a dispute is an order action (``POST /orders/{id}/resolution/dispute``, in
``api.orders_actions``). Resolving starts a DISPUTE_RESOLVE operation and waits for it (api.md
1.9): 200 ``RESOLVED`` when the distribution is confirmed within the wait, 202 ``UNDER_REVIEW``
with the decision recorded while it runs, the operation's error when it FAILED. Ids of another
marketplace, and ids of the wrong prefix, answer 404 ``DISPUTE_NOT_FOUND``.
"""

from typing import Any, Final

import asyncpg
import msgspec
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody

from api.auth import CurrentCaller, requires
from api.database import read
from api.idempotency import Reply, run_mutation
from api.orders_support import await_operation, choice_filter, status_filter, time_filter
from api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, page_of, page_request
from api.paths import API_PREFIX
from api.runtime import get_runtime
from api.schemas import amount_minor
from api.schemas.disputes import Dispute, DisputeAssign, DisputeResolve, dispute_out
from flows import disputes
from flows.dispute_resolution import resolve_dispute
from flows.disputes import DisputeFilters, ResolutionStarted
from flows.queries import escrows as escrow_queries

__all__ = [
    "DISPUTES_ROUTES",
    "assign_dispute",
    "get_dispute",
    "list_disputes",
    "resolve_dispute_route",
]

_DISPUTE_STATUSES: Final = ("OPEN", "UNDER_REVIEW", "RESOLVED")
_PARTIES: Final = ("BUYER", "SELLER")
_DISPUTE_PATH: Final = "/disputes/{dispute_id:str}"


def _location(dispute_id: str) -> str:
    return f"{API_PREFIX}/disputes/{dispute_id}"


@get("/disputes", guards=[requires("read")], tags=["disputes"])
async def list_disputes(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    *,
    order_id: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    opened_by: FromQuery[str | None] = None,
    assigned_to: FromQuery[str | None] = None,
    created_after: FromQuery[str | None] = None,
    created_before: FromQuery[str | None] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[Dispute]:
    """List disputes, newest first; filters combine with AND."""
    filters = DisputeFilters(
        order_id=order_id,
        statuses=status_filter("status", status, _DISPUTE_STATUSES),
        opened_by=choice_filter("opened_by", opened_by, _PARTIES),
        assigned_to=assigned_to,
        created_after=time_filter("created_after", created_after),
        created_before=time_filter("created_before", created_before),
    )
    position = page_request(
        request, limit=limit, cursor=cursor, filters=msgspec.to_builtins(filters)
    )

    async def fetch(conn: asyncpg.Connection) -> Page[Dispute]:
        page = await disputes.list_disputes(
            conn,
            marketplace_id=caller.tenant,
            filters=filters,
            after=position.after,
            limit=position.fetch_limit,
        )
        return page_of(position, page.data, dispute_out)

    return await read(request, fetch)


@get(_DISPUTE_PATH, guards=[requires("read")], tags=["disputes"])
async def get_dispute(
    request: Request[Any, Any, Any], caller: CurrentCaller, dispute_id: FromPath[str]
) -> Dispute:
    """One dispute."""

    async def fetch(conn: asyncpg.Connection) -> Dispute:
        found = await disputes.get_dispute(
            conn, marketplace_id=caller.tenant, dispute_id=dispute_id
        )
        return dispute_out(found)

    return await read(request, fetch)


@post(f"{_DISPUTE_PATH}/assign", guards=[requires("support")], status_code=200, tags=["disputes"])
async def assign_dispute(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    dispute_id: FromPath[str],
    data: JSONBody[DisputeAssign],
) -> Response[Dispute]:
    """Assign (or re-assign) a reviewer: ``UNDER_REVIEW``."""

    async def work(conn: asyncpg.Connection) -> Dispute:
        assigned = await disputes.assign_dispute(
            conn,
            marketplace_id=caller.tenant,
            actor=caller.actor,
            dispute_id=dispute_id,
            assigned_to=data.assigned_to,
        )
        return dispute_out(assigned)

    return await run_mutation(request, caller, work)


@post(f"{_DISPUTE_PATH}/resolve", guards=[requires("support")], status_code=200, tags=["disputes"])
async def resolve_dispute_route(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    dispute_id: FromPath[str],
    data: JSONBody[DisputeResolve],
) -> Response[Dispute]:
    """Decide and distribute the escrow on chain: 200 ``RESOLVED``, or 202 while it runs."""
    runtime = get_runtime(request)
    tenant = caller.tenant
    release = None if data.release_amount is None else amount_minor(data.release_amount)
    refund = None if data.refund_amount is None else amount_minor(data.refund_amount)

    async def work(conn: asyncpg.Connection) -> ResolutionStarted:
        return await resolve_dispute(
            conn,
            runtime.registry,
            marketplace_id=tenant,
            actor=caller.actor,
            dispute_id=dispute_id,
            decision=data.decision,
            release_amount_minor=release,
            refund_amount_minor=refund,
            note=data.note,
        )

    async def recover(conn: asyncpg.Connection) -> ResolutionStarted:
        # The effect committed in a request that died: wait for the order's latest operation.
        dispute = await disputes.get_dispute(conn, marketplace_id=tenant, dispute_id=dispute_id)
        latest = await escrow_queries.latest_operations_of_orders(conn, tenant, [dispute.order_id])
        return ResolutionStarted(dispute=dispute, operation=latest[dispute.order_id])

    async def finish(started: ResolutionStarted) -> Reply:
        ended = await await_operation(runtime, tenant, started.operation.id)

        async def fetch(conn: asyncpg.Connection) -> Dispute:
            found = await disputes.get_dispute(conn, marketplace_id=tenant, dispute_id=dispute_id)
            return dispute_out(found)

        current = await read(request, fetch)
        if ended:
            return Reply(current)
        return Reply(current, status_code=202, location=_location(dispute_id))

    return await run_mutation(request, caller, work, finish=finish, recover=recover)


DISPUTES_ROUTES: Final[tuple[HTTPRouteHandler, ...]] = (
    list_disputes,
    get_dispute,
    assign_dispute,
    resolve_dispute_route,
)
