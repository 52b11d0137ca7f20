"""Database access for route handlers: the pool of the app, and read-only snapshots."""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

import asyncpg
from litestar import Request

__all__ = ["connection", "pool_of", "read"]

T = TypeVar("T")


def pool_of(request: Request[Any, Any, Any]) -> asyncpg.Pool:
    """The connection pool the app's lifespan opened."""
    return cast(asyncpg.Pool, request.app.state.pool)


async def read(
    request: Request[Any, Any, Any], fetch: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    """Run ``fetch(conn)`` in a read-only REPEATABLE READ transaction (one consistent snapshot)."""
    async with (
        pool_of(request).acquire() as proxy,
        proxy.transaction(isolation="repeatable_read", readonly=True),
    ):
        return await fetch(cast(asyncpg.Connection, proxy))


@contextlib.asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection from ``pool`` (autocommit), typed as the ``Connection`` queries take."""
    async with pool.acquire() as proxy:
        # The pool's proxy forwards every Connection method (as in ledger.db).
        yield cast(asyncpg.Connection, proxy)
