"""Top-ups (api.md 3.7, 5.5): Airtm payins that credit a user's balance once confirmed.

``POST /topups`` commits the top-up (TOPUP_CREATED) first, then, outside the transaction, asks
Airtm for the payin (``code`` = top-up id) and records the answer in a new transaction: 201
``TOPUP_AWAITING_USER_CONFIRMATION`` with the checkout link, or 202 ``TOPUP_CREATED`` when Airtm
cannot be reached (a refresh creates the payin later under the same code). The top-up id is
derived from the marketplace and the Idempotency-Key, so a request that takes over a dead one
finds the top-up its predecessor committed instead of writing a second one.

Refresh reads the payin and applies its status; cancel cancels the payin at Airtm first. The
public callback, where Airtm sends the payer back, refreshes at best and redirects; it never
credits by itself. Ids of another marketplace or of the wrong prefix answer 404
``TOPUP_NOT_FOUND``.
"""

import asyncio
import contextlib
from typing import Annotated, Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Redirect

from api.auth import PUBLIC, CurrentCaller, requires
from api.database import read
from api.errors import invalid
from api.idempotency import Reply, run_mutation
from api.orders_support import check_metadata, status_filter, time_filter
from api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, page_of, page_request
from api.paths import API_PREFIX
from api.runtime import AppRuntime, get_runtime
from api.schemas import amount_minor
from api.schemas.topups import TopUp, TopUpCancel, TopUpCreate, topup_out
from api.settings import Settings
from api.topups_payins import CANCELABLE, cancel_payin, create_payin, payin_uris, refresh_topup
from api.user_rate_limits import check_user_rate
from common.errors import AppError, IdempotencyKeyReused, InvalidTransition, TopUpNotFound
from common.ids import derived_id
from flows import topups
from flows.queries import topups as topup_queries
from flows.topups import TopUp as TopUpRow
from flows.transitions import Actor
from ledger.db import run_in_transaction
from statemachines.status import TopUpStatus

__all__ = [
    "TOPUPS_ROUTES",
    "cancel_topup",
    "create_topup",
    "get_topup",
    "list_topups",
    "refresh_topup_route",
    "topup_callback",
]

# Where the payer lands when the request names no URL. api.md 3.7 says "default configured";
# Settings has no such field yet, so these placeholders (reserved .invalid domain) stand in.
_PATH: Final = "/topups/{topup_id:str}"
_STATUSES: Final = tuple(status.value for status in TopUpStatus)
# The callback's refresh is a courtesy to the payer; Airtm's webhook and reconciliation are
# the guarantee, so a slow Airtm never holds the redirect for long.
_CALLBACK_REFRESH_S: Final = 5.0
_CALLBACK_ACTOR: Final = Actor(type="PROVIDER", id="airtm")

CallbackParam = Annotated[str | None, QueryParameter(max_length=255)]


def _location(topup_id: str) -> str:
    return f"{API_PREFIX}/topups/{topup_id}"


def _https_url(field: str, value: str | None, default: str | None) -> str:
    """A redirect target: an absolute https URL (api.md 3.7), else 400 naming ``field``.

    Omitted, it is the configured default; with none configured the field is required, since
    the payer's browser must be sent somewhere after Airtm's checkout.
    """
    if value is None:
        if default is None:
            setting = f"OFFERHUB_TOPUP_{field.upper()}"
            raise invalid(field, f"is required: no default is configured ({setting})")
        return default
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or any(c.isspace() for c in value):
        raise invalid(field, "must be an absolute https URL")
    return value


@post("/topups", guards=[requires("write")], status_code=201, tags=["top-ups"])
async def create_topup(
    request: Request[Any, Any, Any], caller: CurrentCaller, data: JSONBody[TopUpCreate]
) -> Response[TopUp]:
    """Create a top-up and its Airtm payin: 201 awaiting the payer, 202 if Airtm is away."""
    runtime = get_runtime(request)
    runtime.fiat  # noqa: B018 - 503 PROVIDER_UNAVAILABLE before anything is written
    settings: Settings = request.app.state.settings
    return_url = _https_url("return_url", data.return_url, settings.topup_return_url)
    cancel_url = _https_url("cancel_url", data.cancel_url, settings.topup_cancel_url)
    check_metadata(data.metadata)
    minor = amount_minor(data.amount)
    key = request.headers["idempotency-key"]
    topup_id = derived_id("topup_", caller.tenant, "POST /topups", key)

    async def work(conn: asyncpg.Connection) -> TopUpRow:
        existing = await topup_queries.get_topup(conn, caller.tenant, topup_id)
        if existing is not None:
            # A takeover, or a retry after a 5xx released the key: the committed top-up.
            if existing.user_id != data.user_id or existing.amount_minor != minor:
                raise IdempotencyKeyReused(idempotency_key=key)
            return existing
        await check_user_rate(
            conn,
            kind="topups",
            marketplace_id=caller.tenant,
            user_id=data.user_id,
            per_minute=settings.topups_per_user_per_min,
        )
        return await topups.create_topup(
            conn,
            marketplace_id=caller.tenant,
            user_id=data.user_id,
            amount_minor=minor,
            return_url=return_url,
            cancel_url=cancel_url,
            actor=caller.actor,
            description=data.description,
            metadata=data.metadata,
            topup_id=topup_id,
        )

    async def finish(topup: TopUpRow) -> Reply:
        if topup.status == TopUpStatus.TOPUP_CREATED:
            uris = payin_uris(request, topup.id)
            topup = await create_payin(runtime, topup, uris, caller.actor)
        status = 202 if topup.status == TopUpStatus.TOPUP_CREATED else 201
        return Reply(topup_out(topup), status_code=status, location=_location(topup.id))

    return await run_mutation(request, caller, work, finish=finish)


@get("/topups", guards=[requires("read")], tags=["top-ups"])
async def list_topups(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    *,
    user_id: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    created_after: FromQuery[str | None] = None,
    created_before: FromQuery[str | None] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[TopUp]:
    """List top-ups, newest first; filters combine with AND."""
    statuses = status_filter("status", status, _STATUSES)
    after = time_filter("created_after", created_after)
    before = time_filter("created_before", created_before)
    filters = {
        "user_id": user_id,
        "status": statuses,
        "created_after": None if after is None else after.isoformat(),
        "created_before": None if before is None else before.isoformat(),
    }
    position = page_request(request, limit=limit, cursor=cursor, filters=filters)

    async def fetch(conn: asyncpg.Connection) -> Page[TopUp]:
        page = await topup_queries.list_topups(
            conn,
            caller.tenant,
            user_id=user_id,
            statuses=statuses,
            created_after=after,
            created_before=before,
            after=position.after,
            limit=position.fetch_limit,
        )
        return page_of(position, page.topups, topup_out)

    return await read(request, fetch)


@get(_PATH, guards=[requires("read")], tags=["top-ups"])
async def get_topup(
    request: Request[Any, Any, Any], caller: CurrentCaller, topup_id: FromPath[str]
) -> TopUp:
    """One top-up."""

    async def fetch(conn: asyncpg.Connection) -> TopUp:
        row = await topups.get_topup(conn, marketplace_id=caller.tenant, topup_id=topup_id)
        return topup_out(row)

    return await read(request, fetch)


@post(f"{_PATH}/refresh", guards=[requires("write")], status_code=200, tags=["top-ups"])
async def refresh_topup_route(
    request: Request[Any, Any, Any], caller: CurrentCaller, topup_id: FromPath[str]
) -> Response[TopUp]:
    """Read the payin at Airtm and apply its status (a confirmed payin credits, once)."""
    runtime = get_runtime(request)
    runtime.fiat  # noqa: B018 - 503 before the key is claimed

    async def work(conn: asyncpg.Connection) -> TopUpRow:
        return await topups.get_topup(conn, marketplace_id=caller.tenant, topup_id=topup_id)

    async def finish(topup: TopUpRow) -> Reply:
        uris = payin_uris(request, topup.id)
        return Reply(topup_out(await refresh_topup(runtime, topup, caller.actor, uris=uris)))

    return await run_mutation(request, caller, work, finish=finish)


@post(f"{_PATH}/cancel", guards=[requires("write")], status_code=200, tags=["top-ups"])
async def cancel_topup(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    topup_id: FromPath[str],
    data: JSONBody[TopUpCancel | None] = None,
) -> Response[TopUp]:
    """Cancel the payin at Airtm, then the top-up: ``TOPUP_CANCELED``."""
    runtime = get_runtime(request)
    runtime.fiat  # noqa: B018 - 503 before the key is claimed
    reason = data.reason if data is not None else None

    async def work(conn: asyncpg.Connection) -> TopUpRow:
        topup = await topups.get_topup(conn, marketplace_id=caller.tenant, topup_id=topup_id)
        if topup.status not in CANCELABLE:
            raise InvalidTransition(
                f"a top-up in {topup.status} cannot be canceled",
                resource_type="topup",
                resource_id=topup.id,
                current_state=topup.status,
                allowed_states=list(CANCELABLE),
            )
        return topup

    async def finish(topup: TopUpRow) -> Reply:
        await cancel_payin(runtime, topup, caller.actor)

        async def cancel(conn: asyncpg.Connection) -> TopUpRow:
            return await topups.cancel_topup(
                conn,
                marketplace_id=caller.tenant,
                topup_id=topup.id,
                actor=caller.actor,
                reason=reason,
            )

        return Reply(topup_out(await run_in_transaction(runtime.pool, cancel)))

    return await run_mutation(request, caller, work, finish=finish)


def _with_params(url: str, **params: str) -> str:
    """``url`` with ``params`` appended to its query (existing parameters kept)."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _courtesy_refresh(runtime: AppRuntime | None, topup: TopUpRow) -> TopUpRow:
    """Refresh when possible; any failure leaves the top-up as stored (never an error page)."""
    if runtime is None:
        return topup
    with contextlib.suppress(AppError, TimeoutError):
        async with asyncio.timeout(_CALLBACK_REFRESH_S):
            return await refresh_topup(runtime, topup, _CALLBACK_ACTOR, uris=None)
    return topup


@get(f"{_PATH}/callback", opt=PUBLIC, status_code=302, tags=["top-ups"])
async def topup_callback(
    request: Request[Any, Any, Any],
    topup_id: FromPath[str],
    status: CallbackParam = None,
    code: CallbackParam = None,
) -> Redirect:
    """Where Airtm sends the payer back: redirect to ``return_url`` or ``cancel_url``.

    ``status=confirmed`` goes to ``return_url``, anything else to ``cancel_url``, with
    ``topup_id`` and the top-up's current ``status`` appended. The payin is re-read on the way
    (a redirect is no proof of payment: only Airtm's payin status moves the top-up).
    """
    del code  # Airtm may echo the payin code; the path already names the top-up.

    async def fetch(conn: asyncpg.Connection) -> TopUpRow | None:
        return await topup_queries.find_topup(conn, code=topup_id)

    topup = await read(request, fetch)
    if topup is None:
        raise TopUpNotFound(topup_id=topup_id)
    runtime = getattr(request.app.state, "runtime", None)
    topup = await _courtesy_refresh(runtime, topup)
    target = topup.return_url if status == "confirmed" else topup.cancel_url
    return Redirect(_with_params(target, topup_id=topup.id, status=topup.status), status_code=302)


TOPUPS_ROUTES: Final[tuple[HTTPRouteHandler, ...]] = (
    create_topup,
    list_topups,
    get_topup,
    refresh_topup_route,
    cancel_topup,
    topup_callback,
)
