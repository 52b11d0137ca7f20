"""``/marketplaces``: tenants, created and read with the master key only (api.md 3.2)."""

from typing import Any

import asyncpg
from litestar import Request, Response, get, post
from litestar.params import FromPath, JSONBody

from api.auth import CurrentCaller, requires_master
from api.database import read
from api.idempotency import run_mutation
from api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, page_of, page_request
from api.paths import API_PREFIX
from api.queries.marketplaces import get_marketplace, insert_marketplace, list_marketplaces
from api.schemas.marketplaces import (
    DEFAULT_PLATFORM_FEE_BPS,
    Marketplace,
    MarketplaceCreate,
    marketplace_out,
)
from common.errors import InvalidRequest, MarketplaceNotFound
from common.ids import new_id
from flows.audit import record_audit

__all__ = ["create_marketplace", "get_one_marketplace", "list_all_marketplaces"]


@post("/marketplaces", guards=[requires_master()], status_code=201, tags=["marketplaces"])
async def create_marketplace(
    request: Request[Any, Any, Any], caller: CurrentCaller, data: JSONBody[MarketplaceCreate]
) -> Response[Marketplace]:
    """Create a marketplace (master key)."""

    async def work(conn: asyncpg.Connection) -> Marketplace:
        fee_bps = data.platform_fee_bps
        row = await insert_marketplace(
            conn,
            marketplace_id=new_id("mkt_"),
            name=data.name,
            platform_fee_bps=DEFAULT_PLATFORM_FEE_BPS if fee_bps is None else fee_bps,
        )
        if row is None:
            raise InvalidRequest("a marketplace with this name exists", field="name")
        # The first entry of the new marketplace's audit chain.
        actor = caller.actor
        await record_audit(
            conn,
            marketplace_id=row.id,
            actor_type=actor.type,
            actor_id=actor.id,
            action="MARKETPLACE_CREATED",
            resource_type="marketplace",
            resource_id=row.id,
            after={"name": row.name, "platform_fee_bps": row.platform_fee_bps},
            request_id=actor.request_id,
        )
        return marketplace_out(row)

    return await run_mutation(
        request,
        caller,
        work,
        status_code=201,
        location=lambda created: f"{API_PREFIX}/marketplaces/{created.id}",
    )


@get("/marketplaces", guards=[requires_master()], tags=["marketplaces"])
async def list_all_marketplaces(
    request: Request[Any, Any, Any], limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[Marketplace]:
    """List marketplaces, newest first (master key)."""
    position = page_request(request, limit=limit, cursor=cursor)

    async def fetch(conn: asyncpg.Connection) -> Page[Marketplace]:
        rows = await list_marketplaces(conn, after=position.after, limit=position.fetch_limit)
        return page_of(position, rows, marketplace_out)

    return await read(request, fetch)


@get("/marketplaces/{marketplace_id:str}", guards=[requires_master()], tags=["marketplaces"])
async def get_one_marketplace(
    request: Request[Any, Any, Any], marketplace_id: FromPath[str]
) -> Marketplace:
    """One marketplace (master key)."""

    async def fetch(conn: asyncpg.Connection) -> Marketplace:
        row = await get_marketplace(conn, marketplace_id)
        if row is None:
            raise MarketplaceNotFound(marketplace_id=marketplace_id)
        return marketplace_out(row)

    return await read(request, fetch)
