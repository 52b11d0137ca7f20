"""Audit log cost: commits per second with one audit entry each, and chain verification speed.

Starts a durable PostgreSQL (fsync on) from the embedded binaries, or uses DATABASE_URL, and
runs 16 connections for ``--duration`` seconds each, every transaction writing one outbox event:

- ``baseline``: the event only;
- ``one_chain``: the event and one audit entry, all 16 writers in one marketplace (they queue on
  its chain head at commit: the trade-off documented in schema.sql);
- ``own_chains``: the same with one marketplace per writer (no shared head).

Then ``verify_chain`` recomputes the longest chain. The last line of output is one JSON object.
"""

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

# Run as a script, this file's folder comes first on sys.path; the repository root must.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _postgres import bench_database

from common.ids import new_id
from flows.audit import record_audit, verify_chain
from flows.events import emit
from ledger import create_pool, migrate

WRITERS = 16

Change = Callable[[asyncpg.Connection, str], Awaitable[None]]


async def _event_only(conn: asyncpg.Connection, marketplace_id: str) -> None:
    await emit(
        conn,
        marketplace_id=marketplace_id,
        type="bench.changed",
        resource_type="order",
        resource_id=new_id("ord_"),
        data={"status": "FUNDS_RESERVED"},
    )


async def _event_and_audit(conn: asyncpg.Connection, marketplace_id: str) -> None:
    await _event_only(conn, marketplace_id)
    await record_audit(
        conn,
        marketplace_id=marketplace_id,
        actor_type="API_KEY",
        actor_id="key_" + "b" * 32,
        action="FUNDS_RESERVED",
        resource_type="order",
        resource_id=new_id("ord_"),
        before={"status": "ORDER_CREATED"},
        after={"status": "FUNDS_RESERVED", "email": "buyer@example.com"},
        request_id="bench",
    )


async def _measure(
    pool: asyncpg.Pool, marketplaces: list[str], change: Change, duration_s: float
) -> float:
    """Commits per second of ``WRITERS`` loops, writer i in ``marketplaces[i % len]``."""
    deadline = time.perf_counter() + duration_s
    counts = [0] * WRITERS

    async def writer(index: int) -> None:
        marketplace_id = marketplaces[index % len(marketplaces)]
        async with pool.acquire() as conn:
            while time.perf_counter() < deadline:
                async with conn.transaction():
                    await change(conn, marketplace_id)
                counts[index] += 1

    started = time.perf_counter()
    await asyncio.gather(*(writer(index) for index in range(WRITERS)))
    return sum(counts) / (time.perf_counter() - started)


async def run(dsn: str, duration_s: float) -> dict[str, float | int]:
    """All measurements on a fresh schema; the figures by name."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        marketplaces = []
        for _ in range(WRITERS):
            marketplace_id = new_id("mkt_")
            await conn.execute(
                "INSERT INTO marketplaces (id, name) VALUES ($1, $1)", marketplace_id
            )
            marketplaces.append(marketplace_id)
    finally:
        await conn.close()
    pool = await create_pool(dsn, min_size=WRITERS, max_size=WRITERS)
    try:
        baseline = await _measure(pool, marketplaces[:1], _event_only, duration_s)
        one_chain = await _measure(pool, marketplaces[:1], _event_and_audit, duration_s)
        own_chains = await _measure(pool, marketplaces, _event_and_audit, duration_s)
        async with pool.acquire() as conn:
            started = time.perf_counter()
            result = await verify_chain(conn, marketplaces[0])
            verify_s = time.perf_counter() - started
    finally:
        await pool.close()
    assert result.valid, result
    return {
        "writers": WRITERS,
        "baseline_event_only_tps": round(baseline, 1),
        "audit_one_chain_tps": round(one_chain, 1),
        "audit_own_chains_tps": round(own_chains, 1),
        "verify_entries": result.entries_checked,
        "verify_entries_per_s": round(result.entries_checked / verify_s, 1),
    }


def main() -> None:
    """Parse arguments, start a durable server unless DATABASE_URL is set, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per measurement")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    args = parser.parse_args()
    duration_s = 3.0 if args.quick else args.duration
    with bench_database(durable=True) as dsn:
        figures = asyncio.run(run(dsn, duration_s))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
