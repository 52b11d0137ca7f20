"""``/auth/api-keys`` and ``/auth/me`` (api.md 3.2): keys are managed by ``admin`` keys of the
marketplace, or by the master key naming a ``marketplace_id``.
"""

from typing import Annotated, Any

import asyncpg
from litestar import Request, Response, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.api_keys import issue_key, revoke_key
from api.auth import Caller, CurrentCaller, authenticated, requires
from api.database import read
from api.errors import invalid
from api.idempotency import run_mutation
from api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, page_of, page_request
from api.paths import API_PREFIX
from api.queries.api_keys import find_api_key, get_api_key, list_api_keys
from api.queries.marketplaces import get_marketplace
from api.schemas.keys import (
    ApiKey,
    ApiKeyCreate,
    CreatedApiKey,
    Me,
    api_key_out,
    created_api_key_out,
    without_secret,
)
from api.schemas.marketplaces import marketplace_out
from api.settings import Settings
from api.version import VERSION
from common.errors import ApiKeyNotFound, MarketplaceNotFound

__all__ = ["create_api_key", "list_keys", "me", "revoke_api_key_route"]

_KEY_ADMIN = requires("admin", allow_master=True)
_STATUSES = ("ACTIVE", "REVOKED")

StatusFilter = Annotated[
    str | None, QueryParameter(description="ACTIVE, REVOKED, or a comma list of both.")
]


def _target_marketplace(caller: Caller, named: str | None, field: str) -> str:
    """The marketplace a key request acts on: the key's own, or the one the master key names."""
    if caller.is_master:
        if named is None:
            raise invalid(field, "required with the master key")
        return named
    if named is not None:
        raise invalid(field, "not allowed with an API key")
    return caller.tenant


async def _require_marketplace(conn: asyncpg.Connection, marketplace_id: str) -> None:
    if await get_marketplace(conn, marketplace_id) is None:
        raise MarketplaceNotFound(marketplace_id=marketplace_id)


@post("/auth/api-keys", guards=[_KEY_ADMIN], status_code=201, tags=["api keys"])
async def create_api_key(
    request: Request[Any, Any, Any], caller: CurrentCaller, data: JSONBody[ApiKeyCreate]
) -> Response[CreatedApiKey]:
    """Create a key; its plaintext ``key`` is in this answer only (replays omit it)."""
    marketplace_id = _target_marketplace(caller, data.marketplace_id, "marketplace_id")
    if len(set(data.scopes)) != len(data.scopes):
        raise invalid("scopes", "must be unique")
    settings: Settings = request.app.state.settings

    async def work(conn: asyncpg.Connection) -> CreatedApiKey:
        await _require_marketplace(conn, marketplace_id)
        issued = await issue_key(
            conn,
            marketplace_id=marketplace_id,
            name=data.name,
            scopes=data.scopes,
            env=settings.key_env,
            actor=caller.actor,
        )
        return created_api_key_out(issued.row, issued.key)

    return await run_mutation(
        request,
        caller,
        work,
        status_code=201,
        location=lambda created: f"{API_PREFIX}/auth/api-keys/{created.id}",
        # Only the hash of a secret is ever stored: a replay answers without `key`.
        redact=without_secret,
    )


def _statuses(status: str | None) -> list[str] | None:
    if status is None:
        return None
    wanted = sorted({part.strip() for part in status.split(",")})
    if not wanted or any(value not in _STATUSES for value in wanted):
        raise invalid("query.status", "must be ACTIVE, REVOKED or a comma list of them")
    return wanted


@get("/auth/api-keys", guards=[_KEY_ADMIN], tags=["api keys"])
async def list_keys(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    *,
    status: StatusFilter = None,
    marketplace_id: FromQuery[str | None] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[ApiKey]:
    """List the keys of a marketplace, newest first (no secrets)."""
    target = _target_marketplace(caller, marketplace_id, "query.marketplace_id")
    statuses = _statuses(status)
    position = page_request(
        request, limit=limit, cursor=cursor, filters={"status": statuses, "marketplace": target}
    )

    async def fetch(conn: asyncpg.Connection) -> Page[ApiKey]:
        if caller.is_master:
            await _require_marketplace(conn, target)
        rows = await list_api_keys(
            conn, target, statuses=statuses, after=position.after, limit=position.fetch_limit
        )
        return page_of(position, rows, api_key_out)

    return await read(request, fetch)


@delete("/auth/api-keys/{key_id:str}", guards=[_KEY_ADMIN], status_code=200, tags=["api keys"])
async def revoke_api_key_route(
    request: Request[Any, Any, Any], caller: CurrentCaller, key_id: FromPath[str]
) -> Response[ApiKey]:
    """Revoke a key at once; revoking twice returns it unchanged."""

    async def work(conn: asyncpg.Connection) -> ApiKey:
        if caller.is_master:
            found = await find_api_key(conn, key_id)
            if found is None:
                raise ApiKeyNotFound(key_id=key_id)
            revoked = await revoke_key(conn, found.marketplace_id, key_id, actor=caller.actor)
            return api_key_out(revoked)
        return api_key_out(await revoke_key(conn, caller.tenant, key_id, actor=caller.actor))

    return await run_mutation(request, caller, work)


@get(["/auth/me", "/me"], guards=[authenticated()], tags=["api keys"])
async def me(request: Request[Any, Any, Any], caller: CurrentCaller) -> Me:
    """The calling credential, its marketplace, the network and the version."""
    network: str = request.app.state.config.network
    if caller.is_master:
        return Me(api_key=None, marketplace=None, master=True, network=network, version=VERSION)
    tenant, key_id = caller.tenant, caller.key_id
    assert key_id is not None

    async def fetch(conn: asyncpg.Connection) -> Me:
        key = await get_api_key(conn, tenant, key_id)
        marketplace = await get_marketplace(conn, tenant)
        assert key is not None
        assert marketplace is not None
        return Me(
            api_key=api_key_out(key),
            marketplace=marketplace_out(marketplace),
            master=False,
            network=network,
            version=VERSION,
        )

    return await read(request, fetch)
