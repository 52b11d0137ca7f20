"""Shared set-up of the deposit-monitor tests (no tests here).

A sandbox world with users whose wallets were activated by the real WALLET_ACTIVATE
operation, and monitors built fresh for each simulated "process", each with its own HTTP
client to the sandbox's Horizon. :class:`CrashAfterReads` lets a monitor process die between
two Horizon reads (BaseException: no ``except Exception`` catches it).
"""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx

from flows.deposit_monitor import DepositMonitor, MonitorSettings
from flows.queries.wallets import Wallet
from ledger import AccountNotFound, get_account_by_code
from providers.stellar.horizon import HorizonClient
from providers.stellar.port import PaymentPage, WalletNetwork
from tests.db.sandbox_world import SandboxWorld, SimulatedCrash

USDC = 10_000_000


class CrashAfterReads:
    """Delegates to the real client; the process dies on the read after ``reads`` of them."""

    def __init__(self, inner: WalletNetwork, reads: int) -> None:
        self._inner = inner
        self._left = reads

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def list_payments(self, account_id: str, **options: Any) -> PaymentPage:
        if self._left == 0:
            raise SimulatedCrash("the monitor process died between two Horizon reads")
        self._left -= 1
        return await self._inner.list_payments(account_id, **options)


@contextlib.asynccontextmanager
async def monitor(
    world: SandboxWorld, *, crash_after_reads: int | None = None, **settings: Any
) -> AsyncIterator[DepositMonitor]:
    """A fresh monitor "process" on the world's database and sandbox."""
    transport = httpx.ASGITransport(app=world.sandbox.asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url=world.settings.horizon_url) as http:
        network: WalletNetwork = HorizonClient(http, usdc_issuer=world.settings.usdc_issuer)
        if crash_after_reads is not None:
            network = CrashAfterReads(network, crash_after_reads)
        yield DepositMonitor(
            world.pool,
            network,
            usdc_issuer=world.settings.usdc_issuer,
            settings=MonitorSettings(**settings),
        )


async def user_with_wallet(world: SandboxWorld) -> Wallet:
    """A users row and its activated wallet (no USDC yet)."""
    wallet = await world.activated_wallet()
    async with world.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO users (marketplace_id, id, external_user_id) VALUES ($1, $2, $2)",
            world.marketplace_id,
            wallet.user_id,
        )
    return wallet


async def posted(world: SandboxWorld, code: str) -> int:
    """An account's posted balance (0 when it was never opened)."""
    async with world.pool.acquire() as conn:
        try:
            account = await get_account_by_code(conn, world.marketplace_id, "USD", code)
        except AccountNotFound:
            return 0
    return account.balance.posted


async def expire_leases(pool: asyncpg.Pool) -> None:
    """Let time pass for the database: the leases of a dead monitor run out."""
    async with pool.acquire() as conn:
        await conn.execute("UPDATE deposit_cursors SET leased_until = now() - interval '1 second'")


async def credited_events(world: SandboxWorld, user_id: str) -> list[dict[str, Any]]:
    """The ``data`` of the user's ``balance.credited`` events, in order."""
    async with world.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT data FROM events WHERE marketplace_id = $1 AND resource_id = $2"
            " AND type = 'balance.credited' ORDER BY sequence",
            world.marketplace_id,
            user_id,
        )
    return [dict(row["data"]) for row in rows]


async def zero_sum_violations(pool: asyncpg.Pool) -> int:
    """Rows of ``ledger_zero_sum_violations_v1()``: 0 when the books balance."""
    async with pool.acquire() as conn:
        return len(await conn.fetch("SELECT * FROM ledger_zero_sum_violations_v1()"))
