"""Every route handler of ``/api/v1``, registered by ``api.app.create_app``.

A resource module writes its handlers like this (paths are relative to ``/api/v1``)::

    class OrderCreate(RequestStruct, frozen=True):      # unknown fields refused
        buyer_id: str
        amount: Amount                                   # "120.50"; 400 INVALID_AMOUNT_FORMAT...
        currency: Currency | None = None                 # optional fields: `X | None = None`

    @post("/orders", guards=[requires("write")], status_code=201)
    async def create_order(
        request: Request[Any, Any, Any], caller: CurrentCaller, data: JSONBody[OrderCreate]
    ) -> Response[Order]:
        async def work(conn: asyncpg.Connection) -> Order:   # one transaction, retried on races
            row = await flows.orders.create(conn, caller.tenant, amount=amount_minor(data.amount),
                                            actor=caller.actor)      # raise AppErrors here
            return order_out(row)
        return await run_mutation(request, caller, work, status_code=201,
                                  location=lambda order: f"{API_PREFIX}/orders/{order.id}")

    @get("/orders", guards=[requires("read")])
    async def list_orders(request: Request[Any, Any, Any], caller: CurrentCaller, *,
                          status: FromQuery[str | None] = None, limit: Limit = DEFAULT_LIMIT,
                          cursor: Cursor = None) -> Page[Order]:
        position = page_request(request, limit=limit, cursor=cursor, filters={"status": status})
        async def fetch(conn: asyncpg.Connection) -> Page[Order]:
            rows = await queries.list_orders(conn, caller.tenant, after=position.after,
                                             limit=position.fetch_limit)
            return page_of(position, rows, order_out)
        return await read(request, fetch)

Rules: exactly one guard from ``api.auth`` per handler, or ``opt=PUBLIC`` (checked at start-up);
parameters through ``FromPath``/``FromQuery``/``QueryParameter``/``JSONBody`` (Litestar 2.x
warns on inferred ones); never a handler-level ``before_request`` (it would replace the request
checks). Add the handlers to :data:`ROUTES`.
"""

from typing import Final

from litestar.handlers import HTTPRouteHandler

from api.config import config
from api.routes.audit import AUDIT_ROUTES
from api.routes.disputes import DISPUTES_ROUTES
from api.routes.docs import openapi_document
from api.routes.events import EVENTS_ROUTES
from api.routes.health import health, readiness
from api.routes.keys import create_api_key, list_keys, me, revoke_api_key_route
from api.routes.ledger import LEDGER_ROUTES
from api.routes.marketplaces import create_marketplace, get_one_marketplace, list_all_marketplaces
from api.routes.orders import ORDERS_ROUTES
from api.routes.provider_webhooks import PROVIDER_WEBHOOK_ROUTES
from api.routes.reconciliation import RECONCILIATION_ROUTES
from api.routes.reports import REPORTS_ROUTES
from api.routes.topups import TOPUPS_ROUTES
from api.routes.users import USERS_ROUTES
from api.routes.webhook_endpoints import WEBHOOK_ENDPOINT_ROUTES
from api.routes.withdrawals import WITHDRAWALS_ROUTES

__all__ = ["ROUTES"]

ROUTES: Final[tuple[HTTPRouteHandler, ...]] = (
    health,
    readiness,
    config,
    openapi_document,
    create_marketplace,
    list_all_marketplaces,
    get_one_marketplace,
    create_api_key,
    list_keys,
    revoke_api_key_route,
    me,
    *USERS_ROUTES,
    *ORDERS_ROUTES,
    *DISPUTES_ROUTES,
    *TOPUPS_ROUTES,
    *WITHDRAWALS_ROUTES,
    *EVENTS_ROUTES,
    *RECONCILIATION_ROUTES,
    *AUDIT_ROUTES,
    *LEDGER_ROUTES,
    *REPORTS_ROUTES,
    *WEBHOOK_ENDPOINT_ROUTES,
    *PROVIDER_WEBHOOK_ROUTES,
)
