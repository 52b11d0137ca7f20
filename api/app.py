"""The Litestar application factory: explicit settings in, an app with its lifespan out.

Every ``/api/v1`` route is mounted on one router whose ``before_request`` hook
(``api.validation.check_request``) checks query, headers and body after the route's guard and
before the handler; the ``caller`` dependency hands the guard's :class:`api.auth.Caller` to
handlers. App-wide: one exception handler (``api.errors``), ``X-Request-ID`` and
``X-RateLimit-*`` on every response, the body limit, and OpenAPI at ``/api/v1/openapi.json``
with an interactive page at ``/api/v1/docs``.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

from litestar import Litestar, Router
from litestar.datastructures import MutableScopeHeaders, State
from litestar.di import Provide
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import Message, Scope

from api.auth import ScopeGuard, is_public, provide_caller
from api.config import Config
from api.errors import JSON_MEDIA_TYPE, exception_handlers
from api.event_hub import StreamSlots, purge_events_periodically, running_event_hub
from api.idempotency import purge_periodically
from api.metrics import instrument_http
from api.openapi import ERROR_RESPONSES, ClosedStructs, document_operations
from api.paths import API_PREFIX
from api.rate_limit import TokenBucketLimiter, add_rate_limit_headers
from api.request_id import add_request_id_header
from api.routes import ROUTES
from api.routes.metrics import metrics
from api.routes.reconciliation import reconciler
from api.routes.webhook_endpoints import webhook_dispatcher
from api.runtime import RuntimeFactory
from api.settings import Settings
from api.validation import check_declarations, check_request
from api.version import VERSION
from ledger.db import create_pool
from ledger.group_commit import GroupCommitter

__all__ = ["VERSION", "create_app"]


def _check_routes(handlers: Sequence[HTTPRouteHandler]) -> None:
    """Refuse to start when a route has neither exactly one scope guard nor ``opt=PUBLIC``, or
    declares a body the request checks cannot handle.
    """
    for handler in handlers:
        check_declarations(handler)
        guards = [guard for guard in handler.guards or () if isinstance(guard, ScopeGuard)]
        if len(guards) != (0 if is_public(handler) else 1):
            raise RuntimeError(
                f"route {handler.handler_name} {sorted(handler.paths)} needs exactly one guard "
                "from api.auth, or opt=PUBLIC"
            )


async def _json_charset(message: Message, _: Scope) -> None:
    """``before_send`` hook: JSON answers say ``charset=utf-8`` (api.md 1.1)."""
    if message["type"] == "http.response.start":
        headers = MutableScopeHeaders.from_message(message)
        if headers.get("content-type") == "application/json":
            headers["content-type"] = JSON_MEDIA_TYPE


def _openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="OFFER-HUB Orchestrator API",
        version=VERSION,
        # Litestar answers unknown paths under its OpenAPI router itself (an HTML 404), so the
        # router lives below /docs; /api/v1/openapi.json is served by api.routes.docs.
        path=f"{API_PREFIX}/docs",
        render_plugins=[ScalarRenderPlugin(path="/")],
        components=Components(
            security_schemes={
                "ApiKey": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API key `ohk_<env>_<key_id>_<secret>`, or the master key.",
                )
            },
            responses=ERROR_RESPONSES,
        ),
        security=[{"ApiKey": []}],
    )


def create_app(
    settings: Settings,
    database_url: str,
    *,
    public_config: Config,
    extra_routes: Sequence[HTTPRouteHandler] = (),
    runtime: RuntimeFactory | None = None,
) -> Litestar:
    """Build the application for ``settings`` on the database at ``database_url``.

    The lifespan owns the connection pool and the idempotency purge task; the caller owns the
    database server and the providers, and describes them in ``public_config`` (served at
    ``/api/v1/config``). ``extra_routes`` are mounted under ``/api/v1`` beside the built-in ones.
    ``runtime`` (providers, operation runner) is entered after the pool and left before it;
    without it, routes that need a provider answer 503 PROVIDER_UNAVAILABLE.
    """
    handlers = [*ROUTES, *extra_routes]
    _check_routes(handlers)
    document_operations(handlers)  # error answers and Idempotency-Key in the OpenAPI document

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = await create_pool(
            database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
        )
        app.state.pool = pool
        # Request transactions of one marketplace share commits (off when the setting is 0).
        committer = (
            GroupCommitter(pool, max_group=settings.group_commit_max)
            if settings.group_commit_max > 0
            else None
        )
        app.state.group_commit = committer
        purge = asyncio.create_task(purge_periodically(pool, settings.idempotency_purge_interval_s))
        event_purge = asyncio.create_task(
            purge_events_periodically(
                pool,
                interval_s=settings.event_purge_interval_s,
                retention=timedelta(days=settings.event_retention_days),
            )
        )
        app.state.stream_slots = StreamSlots(settings.sse_max_streams_per_key)
        try:
            async with contextlib.AsyncExitStack() as stack:
                # SSE wake-ups (LISTEN/NOTIFY) on a connection of their own.
                app.state.event_hub = await stack.enter_async_context(
                    running_event_hub(pool, database_url, poll_s=settings.sse_poll_s)
                )
                if runtime is not None:
                    app.state.runtime = await stack.enter_async_context(runtime(pool))
                    # Outbound webhooks: their secrets are sealed with the runtime's keyring.
                    app.state.webhooks = await stack.enter_async_context(
                        webhook_dispatcher(pool, app.state.runtime.keyring, settings)
                    )
                    # Reconciliation reads through the runtime's clients; scheduled if enabled.
                    app.state.reconciler = await stack.enter_async_context(
                        reconciler(pool, app.state.runtime, settings)
                    )
                yield
        finally:
            for task in (purge, event_purge):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if committer is not None:
                await committer.close()
            await pool.close()

    api = Router(
        API_PREFIX,
        route_handlers=handlers,
        before_request=check_request,
        dependencies={"caller": Provide(provide_caller, sync_to_thread=False)},
    )
    limiter = (
        TokenBucketLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
        if settings.rate_limit_per_s > 0
        else None
    )
    app = Litestar(
        route_handlers=[api, metrics],
        lifespan=[lifespan],
        exception_handlers=exception_handlers,
        before_send=[add_request_id_header, add_rate_limit_headers, _json_charset],
        request_max_body_size=settings.body_limit_bytes,
        openapi_config=_openapi_config(),
        plugins=[ClosedStructs()],
        state=State({"config": public_config, "settings": settings, "rate_limiter": limiter}),
    )
    instrument_http(app)  # every request, 404s included: offerhub_http_requests_total
    return app
