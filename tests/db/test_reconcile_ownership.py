"""Who owns a RUNNING reconciliation run: a dead owner frees the marketplace at once, a live one
never shares it.

The run's first chain read (Horizon's latest ledger) waits behind a gate, so a run can be held
in the middle of its work; by then it holds its lock and is claimed. A process death is its
database sessions ending: the server terminates the lock holder's backend, and the "process"
(its own pool and its task) is dropped.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from common.errors import ReconciliationAlreadyRunning
from ledger.db import create_pool
from providers.stellar.horizon import HorizonClient
from providers.trustless_work.client import TrustlessWorkClient
from reconcile import ChainReader, RunRow, execute_run, start_run
from tests.db.sandbox_world import SandboxWorld, make_world

pytestmark = pytest.mark.db

ABANDONED = "abandoned: the process running it stopped"
# The backends holding a run lock in this database (lock class 5391182, reconcile/store.py).
RUN_LOCK_HOLDERS = """
SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND classid = 5391182 AND granted
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


class GatedTransport(httpx.AsyncBaseTransport):
    """Forwards to the sandbox once ``gate`` is open; ``entered`` tells that a call waits."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.entered.set()
        await self.gate.wait()
        return await self.inner.handle_async_request(request)


@dataclass
class Gated:
    """A chain reader over the sandbox whose Horizon calls wait at ``transport``'s gate."""

    reader: ChainReader
    transport: GatedTransport


@contextlib.asynccontextmanager
async def gated_reader(world: SandboxWorld) -> AsyncIterator[Gated]:
    """A reader through the real clients; Horizon behind a gate (closed at first)."""
    inner = httpx.ASGITransport(app=world.sandbox.asgi_app())
    gated = GatedTransport(inner)
    settings = world.settings
    async with (
        httpx.AsyncClient(transport=inner) as http,
        httpx.AsyncClient(transport=gated, base_url=settings.horizon_url) as horizon,
    ):
        reader = ChainReader(
            HorizonClient(horizon, usdc_issuer=settings.usdc_issuer, get_timeout_s=60.0),
            TrustlessWorkClient(
                http, settings.trustless_work, api_key=settings.trustless_work_api_key
            ),
            platform_address=world.sandbox.platform.public_key,
            passphrase=settings.network_passphrase,
            usdc_issuer=settings.usdc_issuer,
        )
        yield Gated(reader, gated)


async def _run_row(pool: asyncpg.Pool, run_id: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT status, error, claimed_at, finished_at FROM reconciliation_runs WHERE id = $1",
        run_id,
    )
    assert row is not None
    return row


async def _held(pool: asyncpg.Pool, gated: Gated, run: RunRow) -> asyncio.Task[RunRow]:
    """Execute ``run`` in a task until it waits at the gate (locked and claimed by then)."""
    task = asyncio.create_task(execute_run(pool, gated.reader, run))
    async with asyncio.timeout(10):
        await gated.transport.entered.wait()
    return task


async def _kill_lock_holder(pool: asyncpg.Pool) -> None:
    """End the session that owns the run, as the server sees a process death."""
    [holder] = await pool.fetch(RUN_LOCK_HOLDERS)
    # The timeout makes the call wait until the backend has exited (its locks are gone).
    assert await pool.fetchval("SELECT pg_terminate_backend($1, 5000)", holder["pid"])


async def _refused(pool: asyncpg.Pool, marketplace_id: str, running: str) -> None:
    with pytest.raises(ReconciliationAlreadyRunning) as refused:
        await start_run(pool, marketplace_id, trigger="MANUAL")
    assert refused.value.details == {"run_id": running}


async def test_a_run_whose_process_died_gives_way_to_a_new_one_at_once(
    pool: asyncpg.Pool, db_dsn: str
) -> None:
    world = await make_world(pool)
    market = world.marketplace_id
    other = await create_pool(db_dsn, min_size=1, max_size=4)  # the other process
    async with gated_reader(world) as gated:
        dead = await start_run(other, market, trigger="SCHEDULE")
        task = await _held(other, gated, dead)
        assert (await _run_row(pool, dead.id))["claimed_at"] is not None
        await _refused(pool, market, dead.id)  # alive: refused

        await _kill_lock_holder(pool)
        other.terminate()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        # No waiting for an age: the next start closes the dead run and goes ahead.
        fresh = await start_run(pool, market, trigger="MANUAL")
        old = await _run_row(pool, dead.id)
        assert (old["status"], old["error"], fresh.status) == ("FAILED", ABANDONED, "RUNNING")
        gated.transport.gate.set()
        finished = await execute_run(pool, gated.reader, fresh)
    assert (finished.id, finished.status) == (fresh.id, "COMPLETED")


async def test_two_live_runs_never_overlap(pool: asyncpg.Pool) -> None:
    world = await make_world(pool)
    market = world.marketplace_id
    async with gated_reader(world) as gated:
        first = await start_run(pool, market, trigger="SCHEDULE")
        task = await _held(pool, gated, first)
        # However old, a run whose owner is alive is not taken over.
        await pool.execute(
            "UPDATE reconciliation_runs SET created_at = now() - interval '1 day' WHERE id = $1",
            first.id,
        )
        await _refused(pool, market, first.id)
        # A second executor of the same run (a retried request) leaves it to its owner.
        again = await execute_run(pool, gated.reader, first)
        assert (again.id, again.status) == (first.id, "RUNNING")
        assert not task.done()

        gated.transport.gate.set()
        done = await task
        assert (done.status, done.finished_at is not None) == ("COMPLETED", True)
        second = await start_run(pool, market, trigger="MANUAL")
        assert (await execute_run(pool, gated.reader, second)).status == "COMPLETED"
    statuses = await pool.fetch(
        "SELECT status FROM reconciliation_runs WHERE marketplace_id = $1", market
    )
    assert sorted(row["status"] for row in statuses) == ["COMPLETED", "COMPLETED"]


async def test_a_run_that_lost_its_lock_drops_its_result(pool: asyncpg.Pool) -> None:
    world = await make_world(pool)
    market = world.marketplace_id
    async with gated_reader(world) as gated:
        first = await start_run(pool, market, trigger="SCHEDULE")
        task = await _held(pool, gated, first)
        # Its connection drops while the process lives on: a new start takes over.
        await _kill_lock_holder(pool)
        second = await start_run(pool, market, trigger="MANUAL")
        gated.transport.gate.set()
        late = await task
        assert (late.id, late.status, late.error) == (first.id, "FAILED", ABANDONED)
        assert (await execute_run(pool, gated.reader, second)).status == "COMPLETED"
    stored = await pool.fetchval(
        "SELECT count(*) FROM reconciliation_items WHERE run_id = $1", first.id
    )
    events = await pool.fetchval("SELECT count(*) FROM events WHERE resource_id = $1", first.id)
    assert (stored, events) == (0, 0)


async def test_an_unclaimed_run_is_closed_after_the_grace(pool: asyncpg.Pool) -> None:
    world = await make_world(pool)
    market = world.marketplace_id
    # Committed, then its starter died before executing it: nobody holds or claimed it.
    first = await start_run(pool, market, trigger="SCHEDULE")
    await _refused(pool, market, first.id)  # it may still be launched
    await pool.execute(
        "UPDATE reconciliation_runs SET created_at = now() - interval '61 seconds' WHERE id = $1",
        first.id,
    )
    second = await start_run(pool, market, trigger="MANUAL")
    old = await _run_row(pool, first.id)
    assert (old["status"], old["error"], old["claimed_at"]) == ("FAILED", ABANDONED, None)
    # A late launch of the closed run does nothing.
    async with gated_reader(world) as gated:
        gated.transport.gate.set()
        late = await execute_run(pool, gated.reader, first)
        assert (late.status, (await _run_row(pool, first.id))["claimed_at"]) == ("FAILED", None)
        assert (await execute_run(pool, gated.reader, second)).status == "COMPLETED"
