"""``/health`` (liveness) and ``/health/ready`` (readiness), public (api.md 3.1)."""

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response, get

from api.auth import PUBLIC
from api.database import pool_of
from api.schemas.common import format_time
from api.version import VERSION
from ledger.schema import SCHEMA_VERSION

__all__ = ["health", "readiness"]


def _timestamp() -> str:
    return format_time(datetime.now(UTC))


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


@get("/health", opt=PUBLIC, sync_to_thread=False, tags=["health"])
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


@get(["/health/ready", "/health/detailed"], opt=PUBLIC, tags=["health"])
async def readiness(request: Request[Any, Any, Any]) -> Response[Readiness]:
    """Answer 200 when the database and schema are up, 503 with the same body otherwise."""
    database, schema = await _check_database(pool_of(request))
    checks = {"database": database, "schema": schema}
    is_healthy = all(check.status == "up" for check in checks.values())
    body = Readiness(
        status="healthy" if is_healthy else "unhealthy",
        version=VERSION,
        timestamp=_timestamp(),
        checks=checks,
    )
    return Response(body, status_code=200 if is_healthy else 503)
