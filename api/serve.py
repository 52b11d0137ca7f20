"""``offerhub serve``: the database, the schema, the sandbox chain and the API in one process."""

import asyncio
import base64
import contextlib
import os
import secrets
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping

import asyncpg
import httpx
import msgspec
import uvicorn

from api.app import VERSION, create_app
from api.bootstrap import bootstrap_marketplace
from api.config import (
    Asset,
    Config,
    Idempotency,
    Operations,
    Pagination,
    PublicProviders,
    SandboxUrls,
)
from api.event_hub import end_event_streams
from api.paths import API_PREFIX
from api.provider_settings import load_provider_endpoints
from api.runtime import load_or_create_keyring, provider_runtime
from api.settings import Settings
from flows.runtime import sandbox_endpoints
from ledger.local_postgres import LocalPostgres
from ledger.schema import migrate
from providers.sandbox.app import Sandbox, SandboxProviderSettings
from providers.stellar.wallet_keys import SecretSeed

__all__ = ["apply_schema", "database", "network_config", "sandbox_config", "serve"]


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[str]:
    """Yield a database URL: ``DATABASE_URL``, or a local server in the data folder."""
    if settings.database_url is not None:
        yield settings.database_url
        return
    server = LocalPostgres(settings.data_dir.resolve() / "postgres", durable=True)
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()


async def apply_schema(dsn: str) -> bool:
    """Apply ``schema.sql`` if needed; True when it was applied now."""
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


def sandbox_config(providers: SandboxProviderSettings, settings: Settings | None = None) -> Config:
    """The public configuration of an installation running on the sandbox chain."""
    sandbox = SandboxUrls(
        horizon_url=providers.horizon_url,
        trustless_work_url=providers.trustless_work.base_url,
        airtm_url=providers.airtm.base_url,
        control_url=providers.control_url,
    )
    return _config(settings or Settings(), "sandbox", providers.usdc_issuer, sandbox)


def network_config(settings: Settings, usdc_issuer: str) -> Config:
    """The public configuration of an installation on Stellar testnet or mainnet."""
    return _config(settings, settings.network, usdc_issuer, None)


def _config(
    settings: Settings, network: str, usdc_issuer: str, sandbox: SandboxUrls | None
) -> Config:
    return Config(
        version=VERSION,
        network=network,
        currencies=["USD"],
        asset=Asset(code="USDC", issuer=usdc_issuer),
        providers=PublicProviders(
            chain="stellar", escrow="trustless_work", fiat="airtm", sandbox=sandbox
        ),
        pagination=Pagination(),
        idempotency=Idempotency(retention_hours=settings.idempotency_retention_hours),
        operations=Operations(wait_seconds=settings.operation_wait_s),
    )


class _SharedSignalServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to ``_serve_all``.

    Two servers run in one process; each would otherwise replace the other's SIGINT handler,
    and only one of them would stop.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install nothing: ``_serve_all`` stops every server on SIGINT or SIGTERM."""
        yield


async def _serve_all(
    servers: list[uvicorn.Server],
    background: contextlib.AbstractAsyncContextManager[None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if on_stop is not None:
            on_stop()  # endless responses (SSE) end first, or the servers would wait for them
        for server in servers:
            server.should_exit = True

    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop)
    async with background or contextlib.nullcontext():
        await asyncio.gather(*(server.serve() for server in servers))


@contextlib.asynccontextmanager
async def _sandbox_airtm_webhooks(sandbox: Sandbox, url: str) -> AsyncIterator[None]:
    """The sandbox's Airtm posts its signed webhooks to ``url`` while the servers run."""
    async with httpx.AsyncClient(timeout=15.0) as http:
        sandbox.start_webhook_pump(url, http=http)
        try:
            yield
        finally:
            await sandbox.stop_webhook_pump()


def _with_sandbox_webhook_secret(settings: Settings, sandbox: Sandbox) -> Settings:
    """One Airtm webhook secret for the sandbox's sender and our route.

    The configured one if set, else a fresh random one: the sandbox's own is derived from its
    fixed seed, so anyone could sign with it.
    """
    secret = settings.airtm_webhook_secret
    if secret is None:
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    sandbox.airtm_webhook_secret = secret
    return msgspec.structs.replace(settings, airtm_webhook_secret=secret)


def _airtm_webhook_url(settings: Settings) -> str:
    """Where the local sandbox reaches our Airtm webhook route."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}{API_PREFIX}/webhooks/airtm"


def _server(app: Callable[..., Awaitable[None]], host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    return _SharedSignalServer(config)


def serve(settings: Settings, environ: Mapping[str, str] | None = None) -> int:
    """Start the database (unless configured), apply the schema and serve until stopped.

    With no real provider configured (``OFFERHUB_HORIZON_URL`` unset), the sandbox chain serves
    on ``settings.sandbox_port`` under ``/_sandbox`` and ``/config`` reports its URLs. On a
    database without marketplaces, a bootstrap marketplace is created and its all-scopes key
    printed once (``API key: ohk_...``). The operation runner works in the API process.
    """
    real = load_provider_endpoints(os.environ if environ is None else environ)
    keyring = load_or_create_keyring(settings.data_dir, settings.wallet_master_keys)
    with database(settings) as dsn:
        applied = asyncio.run(apply_schema(dsn))
        print("schema applied" if applied else "schema is current", flush=True)
        bootstrapped = asyncio.run(bootstrap_marketplace(dsn, settings.key_env))
        if bootstrapped is not None:
            marketplace, issued = bootstrapped
            print(f"Created marketplace {marketplace.name!r} ({marketplace.id})", flush=True)
            print(f"API key: {issued.key}", flush=True)
        servers: list[uvicorn.Server] = []
        background = None
        if real is None:
            sandbox = Sandbox(follow_wall_clock=True)
            settings = _with_sandbox_webhook_secret(settings, sandbox)
            background = _sandbox_airtm_webhooks(sandbox, _airtm_webhook_url(settings))
            providers = sandbox.provider_settings(f"http://{settings.host}:{settings.sandbox_port}")
            endpoints = sandbox_endpoints(providers)
            platform_seed = SecretSeed.from_keypair(sandbox.platform)
            public_config = sandbox_config(providers, settings)
            servers.append(_server(sandbox.asgi_app(), settings.host, settings.sandbox_port))
            print(f"Sandbox chain on {providers.control_url.removesuffix('/control')}", flush=True)
        else:
            endpoints, platform_seed = real
            public_config = network_config(settings, endpoints.usdc_issuer)
        runtime = provider_runtime(
            endpoints,
            keyring=keyring,
            platform_seed=platform_seed,
            network_name=settings.network,
            wait_s=settings.operation_wait_s,
            deposit_poll_s=settings.deposit_poll_s or None,
            operation_lease_s=settings.operation_lease_s,
        )
        app = create_app(settings, dsn, public_config=public_config, runtime=runtime)
        base_url = f"http://{settings.host}:{settings.port}/api/v1"
        print(f"OFFER-HUB listening on {base_url}", flush=True)
        print(f"API docs: {base_url}/docs", flush=True)
        servers.insert(0, _server(app, settings.host, settings.port))
        asyncio.run(_serve_all(servers, background, on_stop=lambda: end_event_streams(app)))
    return 0
