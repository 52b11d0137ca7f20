"""The Litestar application factory: explicit settings in, an app with its lifespan out."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

import asyncpg
import msgspec
from litestar import Litestar, Response, get
from litestar.datastructures import State

from api.config import Config, config
from api.settings import Settings
from ledger.db import create_pool
from ledger.schema import SCHEMA_VERSION

__all__ = ["VERSION", "create_app"]

try:
    VERSION = version("offerhub")
except PackageNotFoundError:  # running from a source tree that was not installed
    VERSION = "0.0.0"


def _timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Health(msgspec.Struct, frozen=True):
    """Liveness: the process serves HTTP."""

    status: str
    version: str
    timestamp: str


class Check(msgspec.Struct, frozen=True):
    """One dependency check of the readiness probe."""

    status: str
    required: bool
    latency_ms: float | None
    error: str | None


class Readiness(msgspec.Struct, frozen=True):
    """Readiness: the database answers and carries this build's schema."""

    status: str
    version: str
    timestamp: str
    checks: dict[str, Check]


@get("/api/v1/health", sync_to_thread=False)
def health() -> Health:
    """Answer as long as the process serves HTTP; checks no dependency."""
    return Health(status="healthy", version=VERSION, timestamp=_timestamp())


async def _check_database(pool: asyncpg.Pool) -> tuple[Check, Check]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(2), pool.acquire() as conn:
            schema_version = await conn.fetchval("SELECT version FROM offerhub_schema")
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        down = Check("down", True, None, type(error).__name__)
        return down, Check("down", True, None, "database unavailable")
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    schema = (
        Check("up", True, None, None)
        if schema_version == SCHEMA_VERSION
        else Check("down", True, None, f"schema {schema_version} is not {SCHEMA_VERSION}")
    )
    return Check("up", True, latency_ms, None), schema


@get(["/api/v1/health/ready", "/api/v1/health/detailed"])
async def readiness(state: State) -> Response[Readiness]:
    """Answer 200 when the database and schema are up, 503 with the same body otherwise."""
    database, schema = await _check_database(state.pool)
    checks = {"database": database, "schema": schema}
    is_healthy = all(check.status == "up" for check in checks.values())
    body = Readiness(
        status="healthy" if is_healthy else "unhealthy",
        version=VERSION,
        timestamp=_timestamp(),
        checks=checks,
    )
    return Response(body, status_code=200 if is_healthy else 503)


def create_app(settings: Settings, database_url: str, *, public_config: Config) -> Litestar:
    """Build the application for ``settings`` on the database at ``database_url``.

    The lifespan owns the connection pool; the caller owns the database server and the
    providers, and describes them in ``public_config`` (served at ``/api/v1/config``).
    """

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.pool = await create_pool(
            database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    app = Litestar(
        route_handlers=[health, readiness, config], lifespan=[lifespan], openapi_config=None
    )
    app.state.config = public_config
    return app
