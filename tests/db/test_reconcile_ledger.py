"""The ledger source of a run, with the runner called directly on a sandbox world.

Books broken behind the engine's back (triggers off, as a corrupting script would), a durable
operation stuck past the threshold, a clearing account left non-zero too long, and a second run
refused while one is running.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
import httpx
import pytest

from common.errors import ReconciliationAlreadyRunning
from common.ids import new_id
from ledger import Transfer, create_transfers, open_account, run_in_transaction, system_account
from providers.stellar.horizon import HorizonClient
from providers.trustless_work.client import TrustlessWorkClient
from reconcile import ChainReader, RunSettings, reconcile_once, start_run
from tests.db.sandbox_world import USDC, SandboxWorld, make_world

pytestmark = pytest.mark.db


@asynccontextmanager
async def reader_of(world: SandboxWorld) -> AsyncIterator[ChainReader]:
    """A chain reader over the world's sandbox, through the real clients."""
    transport = httpx.ASGITransport(app=world.sandbox.asgi_app())
    settings = world.settings
    async with (
        httpx.AsyncClient(transport=transport) as http,
        httpx.AsyncClient(transport=transport, base_url=settings.horizon_url) as horizon,
    ):
        yield ChainReader(
            HorizonClient(horizon, usdc_issuer=settings.usdc_issuer),
            TrustlessWorkClient(
                http, settings.trustless_work, api_key=settings.trustless_work_api_key
            ),
            platform_address=world.sandbox.platform.public_key,
            passphrase=settings.network_passphrase,
            usdc_issuer=settings.usdc_issuer,
        )


async def items(pool: asyncpg.Pool, run_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT kind, status, resource_id, external_ref, difference FROM reconciliation_items"
        " WHERE run_id = $1 AND status <> 'MATCHED' ORDER BY kind",
        run_id,
    )


async def post_single(pool: asyncpg.Pool, marketplace_id: str, debit: str, credit: str) -> None:
    """Move 7 USDC from one system account to another (a balanced posting)."""

    async def work(conn: asyncpg.Connection) -> None:
        source = await open_account(conn, marketplace_id, "USD", system_account(debit))
        target = await open_account(conn, marketplace_id, "USD", system_account(credit))
        await create_transfers(
            conn,
            [
                Transfer(
                    id=new_id("trf_"),
                    marketplace_id=marketplace_id,
                    code="test",
                    debit_account_id=source.id,
                    credit_account_id=target.id,
                    amount=7 * USDC,
                    asset="USD",
                )
            ],
        )

    await run_in_transaction(pool, work)


async def test_broken_books_and_a_stuck_operation_are_reported(pool: asyncpg.Pool) -> None:
    world = await make_world(pool)
    market = world.marketplace_id
    await post_single(pool, market, "external:stellar", "adjustment:manual")
    async with pool.acquire() as conn, conn.transaction():
        # A corrupting script: counters moved without a transfer, triggers bypassed.
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "UPDATE ledger_accounts SET credits_posted = credits_posted + 3"
            " WHERE marketplace_id = $1 AND code = 'adjustment:manual'",
            market,
        )
    operation_id = new_id("op_")
    await pool.execute(
        "INSERT INTO operations (marketplace_id, id, kind, resource_type, resource_id, step,"
        " created_at, next_attempt_at)"
        " VALUES ($1, $2, 'RELEASE', 'order', 'ord_x', 'release_funds', now() - $3::interval,"
        " now() + interval '1 day')",
        market,
        operation_id,
        timedelta(hours=2),
    )
    async with reader_of(world) as reader:
        run = await reconcile_once(pool, reader, market, sources=["ledger"])
    assert (run.status, run.discrepancies) == ("COMPLETED", 2)
    assert [tuple(row) for row in await items(pool, run.id)] == [
        ("OPERATION_STUCK", "MISMATCH", "ord_x", operation_id, None),
        ("TRIAL_BALANCE", "MISMATCH", "USD", None, -3),
    ]


async def test_a_clearing_account_nonzero_too_long(pool: asyncpg.Pool) -> None:
    world = await make_world(pool)
    market = world.marketplace_id
    # clearing:topups lent 7 to treasury:stellar and was never repaid: non-zero since now.
    await post_single(pool, market, "clearing:topups", "adjustment:manual")
    async with reader_of(world) as reader:
        fresh = await reconcile_once(pool, reader, market, sources=["airtm"])
        assert fresh.discrepancies == 0
        old = await reconcile_once(
            pool, reader, market, sources=["airtm"], settings=RunSettings(clearing_max_age_s=0)
        )
    assert [tuple(row) for row in await items(pool, old.id)] == [
        ("CLEARING_AGE", "MISMATCH", "clearing:topups", None, -7 * USDC)
    ]


async def test_one_running_run_per_marketplace(pool: asyncpg.Pool) -> None:
    world = await make_world(pool)
    first = await start_run(pool, world.marketplace_id, trigger="SCHEDULE")
    with pytest.raises(ReconciliationAlreadyRunning) as refused:
        await start_run(pool, world.marketplace_id, trigger="MANUAL")
    assert refused.value.details == {"run_id": first.id}
    # A run left RUNNING by a dead process is closed as FAILED by the next start.
    await pool.execute(
        "UPDATE reconciliation_runs SET created_at = now() - interval '2 hours' WHERE id = $1",
        first.id,
    )
    second = await start_run(pool, world.marketplace_id, trigger="MANUAL")
    status = await pool.fetchval("SELECT status FROM reconciliation_runs WHERE id = $1", first.id)
    assert (status, second.status) == ("FAILED", "RUNNING")
