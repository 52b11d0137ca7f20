"""A running API for tests: the real app and lifespan in the test's event loop, over httpx.

``running_api`` builds ``create_app`` on the test database, enters its lifespan (the asyncpg pool
lives in this loop) and talks to it through ``httpx.ASGITransport``. ``test_routes`` mounts a
few handlers written exactly as resource modules write theirs, to exercise the core helpers.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

import asyncpg
import httpx
import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody, QueryParameter

from api.app import create_app
from api.auth import CurrentCaller, requires
from api.database import read
from api.errors import invalid
from api.idempotency import Reply, run_mutation
from api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, page_of, page_request
from api.runtime import RuntimeFactory, provider_runtime
from api.schemas import Amount, Currency, RequestStruct, ResponseStruct, amount_minor
from api.serve import sandbox_config
from api.settings import Settings
from common.errors import OrderNotFound
from common.ids import new_id
from flows.events import emit
from flows.runtime import sandbox_endpoints
from providers.sandbox.app import Sandbox, SandboxProviderSettings
from providers.stellar.wallet_keys import MasterKeyring, SecretSeed

MASTER_KEY = "master-key-for-tests-0123456789"
PUBLIC_CONFIG = sandbox_config(Sandbox().provider_settings("http://sandbox.test"))


def settings_for_tests(**overrides: Any) -> Settings:
    """Settings of a test app: a master key, rate limiting off unless asked for."""
    # Scheduled reconciliation off: tests start their runs themselves.
    fields: dict[str, Any] = {
        "master_key": MASTER_KEY,
        "rate_limit_per_s": 0,
        "pool_max_size": 30,
        "reconcile_interval_s": 0,
    }
    return Settings(**{**fields, **overrides})


class Milestone(RequestStruct, frozen=True):
    """A nested body with an amount (as orders carry)."""

    ref: str
    amount: Amount


class EffectCreate(RequestStruct, frozen=True):
    """Body of the test mutation: a note, an optional amount and nested milestones."""

    note: str
    amount: Amount | None = None
    currency: Currency | None = None
    milestones: list[Milestone] | None = None
    mode: str | None = None


class Effect(ResponseStruct, frozen=True):
    """What the test mutation answers: the event it wrote."""

    event_id: str
    note: str
    amount_minor: int | None


class EventRow(ResponseStruct, frozen=True):
    """An event, as the test list route renders it."""

    id: str
    type: str


class Gate:
    """Lets a test hold the slow route's transaction open until it says go."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()


def _effect_route(gate: Gate | None) -> HTTPRouteHandler:
    """``POST /test/effects``: one outbox event per request; ``mode`` picks a failure."""

    @post("/test/effects", guards=[requires("write")], status_code=201)
    async def create_effect(
        request: Request[Any, Any, Any], caller: CurrentCaller, data: JSONBody[EffectCreate]
    ) -> Response[Effect]:
        async def work(conn: asyncpg.Connection) -> Effect:
            event = await emit(
                conn,
                marketplace_id=caller.tenant,
                type="test.effect",
                resource_type="test",
                resource_id=new_id("tst_"),
                data={"note": data.note},
            )
            if gate is not None and data.mode == "slow":
                gate.entered.set()
                await gate.release.wait()
            if data.mode == "missing":
                raise OrderNotFound(order_id="ord_x")
            if data.mode == "crash":
                raise RuntimeError("secret internals")
            if data.mode == "bad":
                raise invalid("note", "refused after the effect")
            minor = amount_minor(data.amount) if data.amount is not None else None
            return Effect(event_id=event.id, note=data.note, amount_minor=minor)

        async def finish(result: Effect) -> Reply:
            return Reply(result, status_code=202, location=f"/api/v1/test/{result.event_id}")

        async def recover(conn: asyncpg.Connection) -> Effect:
            return Effect(event_id="recovered", note=data.note, amount_minor=None)

        return await run_mutation(
            request,
            caller,
            work,
            status_code=201,
            location=lambda effect: f"/api/v1/test/{effect.event_id}",
            finish=finish if data.mode == "finish" else None,
            recover=recover,
        )

    return create_effect


def routes_for_tests(gate: Gate | None = None) -> list[HTTPRouteHandler]:
    """Fresh handlers (one set per app) written the way resource modules write theirs."""

    @post("/test/no-body", guards=[requires("write")])
    async def no_body(request: Request[Any, Any, Any], caller: CurrentCaller) -> Response[Effect]:
        async def work(conn: asyncpg.Connection) -> Effect:
            return Effect(event_id="none", note="", amount_minor=None)

        return await run_mutation(request, caller, work)

    @get("/test/events", guards=[requires("read")])
    async def list_events(
        request: Request[Any, Any, Any],
        caller: CurrentCaller,
        *,
        event_type: Annotated[str | None, QueryParameter(name="type")] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[EventRow]:
        position = page_request(request, limit=limit, cursor=cursor, filters={"type": event_type})

        async def fetch(conn: asyncpg.Connection) -> Page[EventRow]:
            rows = await conn.fetch(
                "SELECT id, type, occurred_at AS created_at FROM events"
                " WHERE marketplace_id = $1 AND ($2::text IS NULL OR type = $2)"
                " AND ($3::timestamptz IS NULL OR (occurred_at, id) < ($3, $4))"
                " ORDER BY occurred_at DESC, id DESC LIMIT $5",
                caller.tenant,
                event_type,
                *(position.after or (None, None)),
                position.fetch_limit,
            )
            return page_of(position, [_Keyed(**dict(row)) for row in rows], _event_out)

        return await read(request, fetch)

    @get("/test/boom", guards=[requires("read")])
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return [_effect_route(gate), no_body, list_events, boom]


class _Keyed:
    def __init__(self, id: str, type: str, created_at: Any) -> None:
        self.id, self.type, self.created_at = id, type, created_at


def _event_out(row: _Keyed) -> EventRow:
    return EventRow(id=row.id, type=row.type)


class Api:
    """A client of the running app with helpers for credentials and idempotent POSTs."""

    def __init__(self, client: httpx.AsyncClient, dsn: str) -> None:
        self.client = client
        self.dsn = dsn

    @staticmethod
    def auth(key: str, **headers: str) -> dict[str, str]:
        """Headers carrying ``key`` as a bearer token."""
        return {"Authorization": f"Bearer {key}", **headers}

    async def post(
        self, path: str, key: str, body: Any = None, idempotency_key: str | None = None
    ) -> httpx.Response:
        """POST JSON with a fresh Idempotency-Key unless one is given."""
        headers = self.auth(key, **{"Idempotency-Key": idempotency_key or str(uuid.uuid4())})
        return await self.client.post(path, json=body, headers=headers)

    async def get(self, path: str, key: str, **params: Any) -> httpx.Response:
        """GET with ``key``."""
        return await self.client.get(path, params=params, headers=self.auth(key))

    async def new_marketplace(self, name: str | None = None) -> dict[str, Any]:
        """Create a marketplace with the master key."""
        body = {"name": name or f"mkt-{uuid.uuid4().hex[:12]}"}
        response = await self.post("/api/v1/marketplaces", MASTER_KEY, body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def new_key(self, marketplace_id: str, scopes: Sequence[str] = ("*",)) -> str:
        """Issue a key in ``marketplace_id`` with the master key; returns its plaintext."""
        body = {"name": "test", "scopes": list(scopes), "marketplace_id": marketplace_id}
        response = await self.post("/api/v1/auth/api-keys", MASTER_KEY, body)
        assert response.status_code == 201, response.text
        return str(response.json()["key"])

    async def tenant(self, scopes: Sequence[str] = ("*",)) -> tuple[str, str]:
        """A fresh marketplace and a key in it: ``(marketplace_id, key)``."""
        marketplace = await self.new_marketplace()
        return marketplace["id"], await self.new_key(marketplace["id"], scopes)


@contextlib.asynccontextmanager
async def running_api(
    dsn: str,
    *,
    settings: Settings | None = None,
    extra_routes: Sequence[HTTPRouteHandler] | None = None,
) -> AsyncIterator[Api]:
    """The app on ``dsn`` with its lifespan entered, and an httpx client on it."""
    app = create_app(
        settings or settings_for_tests(),
        dsn,
        public_config=PUBLIC_CONFIG,
        extra_routes=routes_for_tests() if extra_routes is None else extra_routes,
    )
    async with _lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client, dsn)


@contextlib.asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    """Run the app's lifespan in a task of its own.

    Litestar's lifespan enters an anyio cancel scope, which must be left by the task that entered
    it; pytest-asyncio runs a fixture's setup and teardown in different tasks.
    """
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # raises the start-up error
    try:
        yield
    finally:
        stop.set()
        await task


def sandbox_runtime(
    sandbox: Sandbox,
    providers: SandboxProviderSettings,
    *,
    wait_s: float,
    deposit_poll_s: float | None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RuntimeFactory:
    """The runtime of a test app on ``sandbox``: real clients to ``providers``, the test
    keyring, the sandbox's platform key and a runner polling every 0.2 s."""
    return provider_runtime(
        sandbox_endpoints(providers),
        keyring=MasterKeyring({1: bytes(range(32))}),
        platform_seed=SecretSeed.from_keypair(sandbox.platform),
        network_name="sandbox",
        wait_s=wait_s,
        poll_s=0.2,
        deposit_poll_s=deposit_poll_s,
        transport=transport,
    )


class SandboxApi(Api):
    """An :class:`Api` whose app runs operations on an in-process sandbox."""

    def __init__(self, client: httpx.AsyncClient, dsn: str, sandbox: Sandbox) -> None:
        super().__init__(client, dsn)
        self.sandbox = sandbox


@contextlib.asynccontextmanager
async def running_api_on_sandbox(
    dsn: str,
    *,
    settings: Settings | None = None,
    wait_s: float = 10.0,
    seed: int = 3,
    airtm_webhooks: bool = False,
    deposit_poll_s: float | None = None,
) -> AsyncIterator[SandboxApi]:
    """The real app with its runtime: real clients to a sandbox, a background runner.

    Requests that start an operation wait up to ``wait_s`` for it, as in production. With
    ``airtm_webhooks``, the sandbox's Airtm signs its webhooks with the app's secret and posts
    them to ``/api/v1/webhooks/airtm`` (after each control action, and every 0.2 s); its clock
    then follows the wall clock, as the signature's timestamp check needs. With
    ``deposit_poll_s``, the deposit monitor credits USDC reaching users' wallets (off by
    default: most tests mint USDC and book it with an adjustment themselves).
    """
    if airtm_webhooks:
        sandbox = Sandbox(seed=seed, follow_wall_clock=True)
        settings = msgspec.structs.replace(
            settings or settings_for_tests(), airtm_webhook_secret=sandbox.airtm_webhook_secret
        )
    else:
        sandbox = Sandbox(seed=seed, start_s=1_800_000_000)
    providers = sandbox.provider_settings("http://sandbox.test")
    factory = sandbox_runtime(
        sandbox,
        providers,
        wait_s=wait_s,
        deposit_poll_s=deposit_poll_s,
        transport=httpx.ASGITransport(app=sandbox.asgi_app()),
    )
    app = create_app(
        settings or settings_for_tests(),
        dsn,
        public_config=sandbox_config(providers),
        runtime=factory,
    )
    async with _lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            if airtm_webhooks:
                url = "http://testserver/api/v1/webhooks/airtm"
                sandbox.start_webhook_pump(url, http=client, interval_s=0.2)
            try:
                yield SandboxApi(client, dsn, sandbox)
            finally:
                await sandbox.stop_webhook_pump()
