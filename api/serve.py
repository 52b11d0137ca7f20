"""``offerhub serve``: the database, the schema, the sandbox chain and the API in one process."""

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator

import asyncpg
import uvicorn

from api.app import VERSION, create_app
from api.bootstrap import bootstrap_marketplace
from api.config import Asset, Config, Pagination, PublicProviders, SandboxUrls
from api.settings import Settings
from ledger.local_postgres import LocalPostgres
from ledger.schema import migrate
from providers.sandbox.app import Sandbox, SandboxProviderSettings

__all__ = ["apply_schema", "database", "sandbox_config", "serve"]


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


def sandbox_config(providers: SandboxProviderSettings) -> Config:
    """The public configuration of an installation running on the sandbox chain."""
    return Config(
        version=VERSION,
        network="sandbox",
        currencies=["USD"],
        asset=Asset(code="USDC", issuer=providers.usdc_issuer),
        providers=PublicProviders(
            chain="stellar",
            escrow="trustless_work",
            fiat="airtm",
            sandbox=SandboxUrls(
                horizon_url=providers.horizon_url,
                trustless_work_url=providers.trustless_work.base_url,
                airtm_url=providers.airtm.base_url,
                control_url=providers.control_url,
            ),
        ),
        pagination=Pagination(),
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


async def _serve_all(servers: list[uvicorn.Server]) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop)
    await asyncio.gather(*(server.serve() for server in servers))


def _server(app: Callable[..., Awaitable[None]], host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    return _SharedSignalServer(config)


def serve(settings: Settings) -> int:
    """Start the database (unless configured), apply the schema and serve until stopped.

    No real provider can be configured yet, so the sandbox chain always serves on
    ``settings.sandbox_port`` under ``/_sandbox`` and ``/config`` reports its URLs. On a
    database without marketplaces, a bootstrap marketplace is created and its all-scopes key
    printed once (``API key: ohk_...``).
    """
    with database(settings) as dsn:
        applied = asyncio.run(apply_schema(dsn))
        print("schema applied" if applied else "schema is current", flush=True)
        bootstrapped = asyncio.run(bootstrap_marketplace(dsn, settings.key_env))
        if bootstrapped is not None:
            marketplace, issued = bootstrapped
            print(f"Created marketplace {marketplace.name!r} ({marketplace.id})", flush=True)
            print(f"API key: {issued.key}", flush=True)
        sandbox = Sandbox(follow_wall_clock=True)
        providers = sandbox.provider_settings(f"http://{settings.host}:{settings.sandbox_port}")
        app = create_app(settings, dsn, public_config=sandbox_config(providers))
        base_url = f"http://{settings.host}:{settings.port}/api/v1"
        print(f"OFFER-HUB listening on {base_url}", flush=True)
        print(f"API docs: {base_url}/docs", flush=True)
        print(f"Sandbox chain on {providers.control_url.removesuffix('/control')}", flush=True)
        servers = [
            _server(app, settings.host, settings.port),
            _server(sandbox.asgi_app(), settings.host, settings.sandbox_port),
        ]
        asyncio.run(_serve_all(servers))
    return 0
