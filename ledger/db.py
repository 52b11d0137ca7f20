"""Connections, transactions with whole-block retries, and database errors as domain errors."""

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import Final, TypeVar, cast

import asyncpg
import msgspec

from common.errors import ConcurrentUpdate, InvariantViolation

__all__ = [
    "LedgerInvariantViolation",
    "TransferRaced",
    "create_pool",
    "run_in_transaction",
    "translate_database_errors",
]

T = TypeVar("T")

# Unique violations that mean "a concurrent transaction posted the same thing first": the whole
# block is retried and then sees the committed row (answering exists / already_posted).
_RACE_CONSTRAINTS: Final = frozenset(
    {"ledger_transfers_pkey", "ledger_transfers_pending_resolved_once"}
)


class TransferRaced(ConcurrentUpdate):
    """A concurrent transaction created the same transfer or resolved the same pending one."""


class LedgerInvariantViolation(InvariantViolation):
    """The database refused a change that would break a ledger invariant."""


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: msgspec.json.encode(value).decode(),
        decoder=msgspec.json.decode,
        schema="pg_catalog",
    )


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    """Create the connection pool, with jsonb encoded and decoded by msgspec."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection
    )
    assert pool is not None
    return pool


@contextlib.contextmanager
def translate_database_errors() -> Iterator[None]:
    """Turn constraint violations raised by the ledger's SQL into domain errors, by name."""
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as error:
        name = getattr(error, "constraint_name", None) or ""
        if name in _RACE_CONSTRAINTS:
            raise TransferRaced(constraint=name) from error
        if name.startswith(("ledger_", "offerhub_")):
            raise LedgerInvariantViolation(str(error), constraint=name) from error
        raise


_RETRYABLE: Final = (
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    ConcurrentUpdate,
)


async def run_in_transaction(
    pool: asyncpg.Pool,
    work: Callable[[asyncpg.Connection], Awaitable[T]],
    *,
    attempts: int = 3,
    base_delay_s: float = 0.01,
) -> T:
    """Run ``work(conn)`` in a transaction, retrying the whole block on races.

    Serialization failures, deadlocks and concurrent-update errors roll the transaction back and
    run ``work`` again, after a jittered exponential backoff. Only blocks that touch nothing but
    the database may be retried this way: never call a provider inside ``work``.
    """
    for attempt in range(1, attempts + 1):
        try:
            async with pool.acquire() as proxy, proxy.transaction():
                # The pool's proxy forwards every Connection method; the ledger takes Connection.
                return await work(cast(asyncpg.Connection, proxy))
        except _RETRYABLE:
            if attempt == attempts:
                raise
        # Full jitter (random between 0 and the exponential cap) spreads out colliding retries.
        await asyncio.sleep(random.uniform(0, base_delay_s * 2**attempt))  # noqa: S311
    raise AssertionError("unreachable")
