"""Deposit monitor passes over many wallets, on a durable PostgreSQL and the in-process sandbox.

Starts a durable PostgreSQL (or uses DATABASE_URL), activates N wallets on a sandbox chain
(reached over HTTP through ``httpx.ASGITransport``, in this process, so the simulated Horizon
shares the CPU with the monitor: the figures are a lower bound), and measures:

- the first pass (every wallet's history read from its first operation, cursors stored);
- an idle pass (nothing new: one Horizon read per wallet, no transaction), i.e. the steady
  cost of watching N wallets;
- a pass after one deposit to every wallet (one page transaction per wallet: transfer,
  deposit row, event, cursor).

The last line of output is one JSON object. ``--quick`` uses 200 wallets instead of 1,000.
"""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import asyncpg
import httpx

# Run as a script, this file's folder comes first on sys.path; the repository root must.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _postgres import bench_database

from common.ids import new_id
from flows.deposit_monitor import DepositMonitor, MonitorSettings, PassSummary
from ledger import create_pool, migrate
from providers.sandbox.app import Sandbox
from providers.stellar.horizon import HorizonClient

USDC = 10_000_000
CONCURRENCY = 8


async def _wallets(pool: asyncpg.Pool, sandbox: Sandbox, marketplace_id: str, count: int) -> None:
    """``count`` active wallets: accounts with a USDC trustline on chain, rows in the database."""
    rows = []
    for _ in range(count):
        keypair = sandbox.chain.activate()
        rows.append((marketplace_id, new_id("wal_"), new_id("usr_"), keypair.public_key))
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO wallets (marketplace_id, id, user_id, public_key, sealed_secret,"
            " key_version, is_active, funded, trustline_ready)"
            " VALUES ($1, $2, $3, $4, 'v1:bench', 1, true, true, true)",
            rows,
        )


async def _timed_pass(monitor: DepositMonitor) -> tuple[float, PassSummary]:
    started = time.perf_counter()
    summary = await monitor.run_once()
    return time.perf_counter() - started, summary


async def run(dsn: str, wallet_count: int) -> dict[str, object]:
    """Set up, run the three passes, return the figures."""
    pool = await create_pool(dsn, min_size=2, max_size=CONCURRENCY + 2)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            marketplace_id = new_id("mkt_")
            await conn.execute(
                "INSERT INTO marketplaces (id, name) VALUES ($1, $1)", marketplace_id
            )
        sandbox = Sandbox(seed=11, start_s=1_800_000_000)
        settings = sandbox.provider_settings("http://sandbox.bench")
        await _wallets(pool, sandbox, marketplace_id, wallet_count)
        transport = httpx.ASGITransport(app=sandbox.asgi_app())
        async with httpx.AsyncClient(transport=transport, base_url=settings.horizon_url) as http:
            monitor = DepositMonitor(
                pool,
                HorizonClient(http, usdc_issuer=settings.usdc_issuer),
                usdc_issuer=settings.usdc_issuer,
                settings=MonitorSettings(concurrency=CONCURRENCY),
            )
            first_s, first = await _timed_pass(monitor)
            idle_s, idle = await _timed_pass(monitor)
            async with pool.acquire() as conn:
                addresses = [
                    r["public_key"] for r in await conn.fetch("SELECT public_key FROM wallets")
                ]
            for address in addresses:
                sandbox.chain.deposit(address, 1 * USDC)
            credit_s, credit = await _timed_pass(monitor)
    finally:
        await pool.close()
    assert first.failed == idle.failed == credit.failed == 0
    assert credit.credited == wallet_count
    return {
        "benchmark": "deposit_monitor",
        "horizon": "in-process sandbox over ASGI (shares the CPU)",
        "wallets": wallet_count,
        "concurrency": CONCURRENCY,
        "first_pass_s": round(first_s, 3),
        "idle_pass_s": round(idle_s, 3),
        "idle_wallets_per_s": round(wallet_count / idle_s, 1),
        "credit_pass_s": round(credit_s, 3),
        "deposits_credited": credit.credited,
        "deposits_per_s": round(credit.credited / credit_s, 1),
    }


def main() -> None:
    """Parse arguments, start a durable server unless DATABASE_URL is set, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 wallets")
    parser.add_argument("--wallets", type=int, default=1_000, help="wallets to watch")
    args = parser.parse_args()
    wallet_count = 200 if args.quick else args.wallets
    with bench_database(durable=True) as dsn:
        figures = asyncio.run(run(dsn, wallet_count))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
