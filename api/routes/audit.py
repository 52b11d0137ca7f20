"""The audit log (api.md 3.11): list entries with filters, verify the marketplace's hash chain.

Both routes need the ``support`` scope and see only the caller's marketplace. Entries list
newest first (``occurred_at``, then ``id``); ``from`` and ``to`` bound ``occurred_at`` as
``[from, to)``.
"""

from datetime import datetime
from typing import Annotated, Any, Final

import asyncpg
import msgspec
from litestar import Request, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromQuery, QueryParameter

from api.auth import CurrentCaller, requires
from api.database import read
from api.errors import invalid
from api.orders_support import choice_filter, time_filter
from api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, page_of, page_request
from api.schemas.audit import AuditEntry, AuditVerification, audit_entry_out, verification_out
from flows.audit import AuditFilters, verify_chain
from flows.queries.audit import list_entries

__all__ = ["AUDIT_ROUTES", "list_audit_logs", "verify_audit_logs"]

_ACTOR_TYPES: Final = ("API_KEY", "MASTER_KEY", "PROVIDER", "SYSTEM")

From = Annotated[
    str | None, QueryParameter(name="from", description="occurred_at >= from (RFC 3339).")
]
To = Annotated[str | None, QueryParameter(name="to", description="occurred_at < to (RFC 3339).")]


def _range(
    occurred_from: str | None, occurred_to: str | None
) -> tuple[datetime | None, datetime | None]:
    start, end = time_filter("from", occurred_from), time_filter("to", occurred_to)
    if start is not None and end is not None and start > end:
        raise invalid("query.to", "must not be before from")
    return start, end


@get("/audit/logs", guards=[requires("support")], tags=["audit"])
async def list_audit_logs(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    *,
    resource_type: FromQuery[str | None] = None,
    resource_id: FromQuery[str | None] = None,
    action: FromQuery[str | None] = None,
    actor_type: FromQuery[str | None] = None,
    actor_id: FromQuery[str | None] = None,
    request_id: FromQuery[str | None] = None,
    occurred_from: From = None,
    occurred_to: To = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[AuditEntry]:
    """List the marketplace's audit entries, newest first; filters combine with AND."""
    start, end = _range(occurred_from, occurred_to)
    filters = AuditFilters(
        resource_type=resource_type,
        resource_id=resource_id,
        action=action,
        actor_type=choice_filter("actor_type", actor_type, _ACTOR_TYPES),
        actor_id=actor_id,
        request_id=request_id,
        occurred_from=start,
        occurred_to=end,
    )
    position = page_request(
        request, limit=limit, cursor=cursor, filters=msgspec.to_builtins(filters)
    )

    async def fetch(conn: asyncpg.Connection) -> Page[AuditEntry]:
        rows = await list_entries(
            conn, caller.tenant, filters, after=position.after, limit=position.fetch_limit
        )
        return page_of(position, rows, audit_entry_out)

    return await read(request, fetch)


@get("/audit/logs/verify", guards=[requires("support")], tags=["audit"])
async def verify_audit_logs(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    *,
    occurred_from: From = None,
    occurred_to: To = None,
) -> AuditVerification:
    """Recompute the marketplace's hash chain over ``[from, to)`` (all of it by default)."""
    start, end = _range(occurred_from, occurred_to)

    async def fetch(conn: asyncpg.Connection) -> AuditVerification:
        return verification_out(await verify_chain(conn, caller.tenant, start, end))

    return await read(request, fetch)


AUDIT_ROUTES: Final[tuple[HTTPRouteHandler, ...]] = (list_audit_logs, verify_audit_logs)
