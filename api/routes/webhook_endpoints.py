"""``/webhook-endpoints`` (api.md 3.10): a marketplace's outbound webhook endpoints, their
secrets and delivery logs. Every route needs the ``admin`` scope.

Secrets are sealed with the runtime's master keyring, so creation and rotation answer 503
``PROVIDER_UNAVAILABLE`` on an app started without a runtime (as wallet creation does). The
plaintext secret is in the create and rotate answers only; their idempotent replays omit it.
Ids of another marketplace, of deleted endpoints or of the wrong prefix answer 404.
"""

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final

import asyncpg
from litestar import Request, Response, delete, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody

from api.auth import CurrentCaller, requires
from api.database import read
from api.errors import FieldError
from api.idempotency import run_audited, run_mutation
from api.orders_support import status_filter
from api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, page_of, page_request
from api.paths import API_PREFIX
from api.runtime import get_runtime
from api.schemas.webhooks import (
    CreatedWebhookEndpoint,
    SecretRotation,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointCreate,
    created_endpoint_out,
    delivery_out,
    endpoint_out,
    without_secret,
)
from api.settings import Settings
from common.errors import ValidationFailed
from flows import webhooks
from flows.queries import webhooks as queries
from flows.webhook_delivery import DeliverySettings, WebhookDispatcher, running_webhook_dispatcher
from providers.stellar.wallet_keys import MasterKeyring

__all__ = [
    "WEBHOOK_ENDPOINT_ROUTES",
    "create_webhook_endpoint",
    "delete_webhook_endpoint",
    "get_webhook_endpoint",
    "list_webhook_deliveries",
    "list_webhook_endpoints",
    "redeliver_webhook",
    "rotate_webhook_secret",
    "webhook_dispatcher",
]

_ADMIN: Final = requires("admin")
_BASE: Final = "/webhook-endpoints"
_PATH: Final = _BASE + "/{endpoint_id:str}"
_STATUSES: Final = ("PENDING", "SUCCEEDED", "FAILED", "CANCELED")
_TAGS: Final = ["webhooks"]


def delivery_settings(settings: Settings) -> DeliverySettings:
    """The delivery worker's settings, from the service's."""
    return DeliverySettings(
        allow_insecure_urls=settings.webhook_allow_insecure_urls,
        backoff_base_s=settings.webhook_backoff_base_s,
        backoff_max_s=settings.webhook_backoff_max_s,
        max_age_s=settings.webhook_max_age_s,
        poll_interval_s=settings.webhook_poll_interval_s,
    )


@contextlib.asynccontextmanager
async def webhook_dispatcher(
    pool: asyncpg.Pool, keyring: MasterKeyring, settings: Settings
) -> AsyncIterator[WebhookDispatcher]:
    """The background delivery worker of the app's lifespan (started, stopped on exit)."""
    async with running_webhook_dispatcher(pool, keyring, delivery_settings(settings)) as running:
        yield running


def _location(endpoint_id: str) -> str:
    return f"{API_PREFIX}{_BASE}/{endpoint_id}"


def _check_endpoint_input(data: WebhookEndpointCreate, settings: Settings) -> list[str]:
    """The validated event patterns; every problem of ``url`` and ``event_types`` at once."""
    patterns = data.event_types if data.event_types is not None else ["*"]
    problems = [
        FieldError(f"event_types[{index}]", message)
        for index, message in webhooks.event_type_problems(patterns)
    ]
    url_problem = webhooks.url_problem(
        data.url, allow_insecure=settings.webhook_allow_insecure_urls
    )
    if url_problem is not None:
        problems.insert(0, FieldError("url", url_problem))
    if problems:
        raise ValidationFailed(fields=problems)
    return patterns


@post(_BASE, guards=[_ADMIN], status_code=201, tags=_TAGS)
async def create_webhook_endpoint(
    request: Request[Any, Any, Any], caller: CurrentCaller, data: JSONBody[WebhookEndpointCreate]
) -> Response[CreatedWebhookEndpoint]:
    """Create an endpoint; its ``secret`` is in this answer only (replays omit it)."""
    settings: Settings = request.app.state.settings
    patterns = _check_endpoint_input(data, settings)
    keyring = get_runtime(request).keyring

    async def work(conn: asyncpg.Connection) -> CreatedWebhookEndpoint:
        row, secret = await webhooks.create_endpoint(
            conn,
            keyring,
            marketplace_id=caller.tenant,
            url=data.url,
            description=data.description,
            event_types=patterns,
            actor=caller.actor,
        )
        return created_endpoint_out(row, secret.reveal())

    return await run_mutation(
        request,
        caller,
        work,
        status_code=201,
        location=lambda created: _location(created.id),
        redact=without_secret,
    )


@get(_BASE, guards=[_ADMIN], tags=_TAGS)
async def list_webhook_endpoints(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    *,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[WebhookEndpoint]:
    """The marketplace's endpoints, newest first (no secrets)."""
    position = page_request(request, limit=limit, cursor=cursor)

    async def fetch(conn: asyncpg.Connection) -> Page[WebhookEndpoint]:
        rows = await queries.list_endpoints(
            conn, caller.tenant, after=position.after, limit=position.fetch_limit
        )
        return page_of(position, rows, endpoint_out)

    return await read(request, fetch)


@get(_PATH, guards=[_ADMIN], tags=_TAGS)
async def get_webhook_endpoint(
    request: Request[Any, Any, Any], caller: CurrentCaller, endpoint_id: FromPath[str]
) -> WebhookEndpoint:
    """One endpoint (no secret)."""

    async def fetch(conn: asyncpg.Connection) -> WebhookEndpoint:
        return endpoint_out(await webhooks.get_endpoint(conn, caller.tenant, endpoint_id))

    return await read(request, fetch)


@delete(_PATH, guards=[_ADMIN], status_code=204, tags=_TAGS)
async def delete_webhook_endpoint(
    request: Request[Any, Any, Any], caller: CurrentCaller, endpoint_id: FromPath[str]
) -> None:
    """Delete an endpoint: its pending deliveries are cancelled and its secrets wiped.

    DELETE ignores idempotency (api.md 1.8); a second DELETE answers 404.
    """

    async def work(conn: asyncpg.Connection) -> None:
        await webhooks.delete_endpoint(
            conn, marketplace_id=caller.tenant, endpoint_id=endpoint_id, actor=caller.actor
        )

    await run_audited(request, caller, work)


@post(f"{_PATH}/rotate-secret", guards=[_ADMIN], status_code=200, tags=_TAGS)
async def rotate_webhook_secret(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    endpoint_id: FromPath[str],
    data: JSONBody[SecretRotation | None] = None,
) -> Response[CreatedWebhookEndpoint]:
    """A new secret (in this answer only); the old one also signs during the grace period."""
    grace_s = webhooks.GRACE_PERIOD_DEFAULT_S
    if data is not None and data.grace_period_seconds is not None:
        grace_s = data.grace_period_seconds
    keyring = get_runtime(request).keyring

    async def work(conn: asyncpg.Connection) -> CreatedWebhookEndpoint:
        row, secret = await webhooks.rotate_endpoint_secret(
            conn,
            keyring,
            marketplace_id=caller.tenant,
            endpoint_id=endpoint_id,
            grace_period_s=grace_s,
            actor=caller.actor,
        )
        return created_endpoint_out(row, secret.reveal())

    return await run_mutation(request, caller, work, redact=without_secret)


@get(f"{_PATH}/deliveries", guards=[_ADMIN], tags=_TAGS)
async def list_webhook_deliveries(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    endpoint_id: FromPath[str],
    *,
    status: FromQuery[str | None] = None,
    event_type: FromQuery[str | None] = None,
    event_id: FromQuery[str | None] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[WebhookDelivery]:
    """An endpoint's deliveries, newest first; filters combine with AND."""
    statuses = status_filter("status", status, _STATUSES)
    filters = {"status": statuses, "event_type": event_type, "event_id": event_id}
    position = page_request(request, limit=limit, cursor=cursor, filters=filters)

    async def fetch(conn: asyncpg.Connection) -> Page[WebhookDelivery]:
        await webhooks.get_endpoint(conn, caller.tenant, endpoint_id)
        rows = await queries.list_deliveries(
            conn,
            caller.tenant,
            endpoint_id,
            statuses=statuses,
            event_type=event_type,
            event_id=event_id,
            after=position.after,
            limit=position.fetch_limit,
        )
        return page_of(position, rows, delivery_out)

    return await read(request, fetch)


@post(
    f"{_PATH}/deliveries/{{delivery_id:str}}/redeliver",
    guards=[_ADMIN],
    status_code=202,
    tags=_TAGS,
)
async def redeliver_webhook(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    endpoint_id: FromPath[str],
    delivery_id: FromPath[str],
) -> Response[WebhookDelivery]:
    """Send a delivery's event again: 202 with the new PENDING delivery (``redelivery_of``)."""

    async def work(conn: asyncpg.Connection) -> WebhookDelivery:
        row = await webhooks.redeliver(
            conn,
            marketplace_id=caller.tenant,
            endpoint_id=endpoint_id,
            delivery_id=delivery_id,
            actor=caller.actor,
        )
        return delivery_out(row)

    response = await run_mutation(
        request,
        caller,
        work,
        status_code=202,
        # There is no route for one delivery: the endpoint's log, filtered to the event.
        location=lambda delivery: (
            f"{_location(endpoint_id)}/deliveries?event_id={delivery.event_id}"
        ),
    )
    dispatcher = getattr(request.app.state, "webhooks", None)
    if isinstance(dispatcher, WebhookDispatcher):
        dispatcher.wake()
    return response


WEBHOOK_ENDPOINT_ROUTES: Final[tuple[HTTPRouteHandler, ...]] = (
    create_webhook_endpoint,
    list_webhook_endpoints,
    get_webhook_endpoint,
    delete_webhook_endpoint,
    rotate_webhook_secret,
    list_webhook_deliveries,
    redeliver_webhook,
)
