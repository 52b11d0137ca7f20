"""Ledger throughput, durable, compared in the same run with a minimal hand-written SQL baseline.

Starts a durable PostgreSQL (fsync on, synchronous_commit on) from the embedded binaries, or
uses DATABASE_URL, and measures transfers per second:

- single transfers (one create_transfers call and one commit each) at 1 and 16 connections,
  random pairs over 10,000 funded, bounded user accounts;
- the same workload through the baseline: lock two rows in id order, update, insert, commit;
- batches of 100 and 1,000 transfers per call and commit, from one connection (one batch
  writer is how group commit posts; concurrent random batches overlap and wait on row locks);
- all of the above crediting one hot account.

The last line of output is one JSON object. ``--quick`` runs each measurement for 3 s.
"""

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# ledger package; the repository root must come first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _postgres import bench_database

from common.ids import new_id
from ledger import (
    AccountSpec,
    AccountType,
    Transfer,
    TransferResult,
    create_pool,
    create_transfers,
    migrate,
    open_account,
    user_account,
)

ACCOUNT_COUNT = 10_000
ASSET = "USD"

BASELINE_SCHEMA = """
CREATE TABLE IF NOT EXISTS baseline_accounts (id bigint PRIMARY KEY, balance bigint NOT NULL);
CREATE TABLE IF NOT EXISTS baseline_transfers (
    id bigserial PRIMARY KEY, debit bigint NOT NULL, credit bigint NOT NULL, amount bigint NOT NULL
);
"""


class Books:
    """The benchmark's marketplace: a world account, 10,000 funded users and one hot account."""

    def __init__(self, marketplace_id: str, world: str, users: list[str], hot: str) -> None:
        self.marketplace_id = marketplace_id
        self.world = world
        self.users = users
        self.hot = hot

    def transfer(self, debit: str, credit: str) -> Transfer:
        """A one-minor-unit transfer between two accounts."""
        return Transfer(
            id=new_id("trf_"),
            marketplace_id=self.marketplace_id,
            code="bench",
            debit_account_id=debit,
            credit_account_id=credit,
            amount=1,
            asset=ASSET,
        )

    def random_pair(self, rng: random.Random, *, hot: bool) -> Transfer:
        """A transfer between two random users, or from a random user to the hot account."""
        debit = rng.choice(self.users)
        credit = self.hot if hot else rng.choice(self.users)
        while credit == debit:
            credit = rng.choice(self.users)
        return self.transfer(debit, credit)


async def set_up(pool: asyncpg.Pool) -> Books:
    """Open the accounts and fund every user with one batched deposit per 1,000 users."""
    async with pool.acquire() as conn:
        await conn.execute(BASELINE_SCHEMA)
        marketplace_id = new_id("mkt_")
        await conn.execute(
            "INSERT INTO marketplaces (id, name) VALUES ($1, $2)", marketplace_id, marketplace_id
        )
        world_spec = AccountSpec(code="external:world", type=AccountType.EXTERNAL)
        world = (await open_account(conn, marketplace_id, ASSET, world_spec)).id
        hot = (await open_account(conn, marketplace_id, ASSET, user_account("hot"))).id
        async with conn.transaction():  # one commit, not 10,000 durable ones: set-up only
            users = [
                (await open_account(conn, marketplace_id, ASSET, user_account(f"u{i}"))).id
                for i in range(ACCOUNT_COUNT)
            ]
        books = Books(marketplace_id, world, users, hot)
        for start in range(0, ACCOUNT_COUNT, 1_000):
            deposits = [
                Transfer(
                    id=new_id("trf_"),
                    marketplace_id=marketplace_id,
                    code="deposit",
                    debit_account_id=world,
                    credit_account_id=user,
                    amount=10**12,
                    asset=ASSET,
                )
                for user in users[start : start + 1_000]
            ]
            async with conn.transaction():
                outcomes = await create_transfers(conn, deposits)
            assert all(outcome.result is TransferResult.OK for outcome in outcomes)
        await conn.executemany(
            "INSERT INTO baseline_accounts VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(i, 10**12) for i in range(ACCOUNT_COUNT + 1)],
        )
    return books


async def measure(
    pool: asyncpg.Pool,
    connections: int,
    duration_s: float,
    one_round: Callable[[asyncpg.Connection, random.Random], Awaitable[int]],
) -> float:
    """Run ``one_round`` in a loop on ``connections`` connections; return transfers per second."""
    deadline = time.perf_counter() + duration_s
    counts = [0] * connections

    async def worker(index: int) -> None:
        rng = random.Random(index)  # workload shape, not security
        async with pool.acquire() as conn:
            while time.perf_counter() < deadline:
                counts[index] += await one_round(conn, rng)

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    return sum(counts) / (time.perf_counter() - started)


def ours(books: Books, batch_size: int, *, hot: bool) -> Callable[..., Awaitable[int]]:
    """One round of our ledger: ``batch_size`` transfers in one call and one commit."""

    async def one_round(conn: asyncpg.Connection, rng: random.Random) -> int:
        batch = [books.random_pair(rng, hot=hot) for _ in range(batch_size)]
        async with conn.transaction():
            outcomes = await create_transfers(conn, batch)
        assert all(outcome.result is TransferResult.OK for outcome in outcomes)
        return batch_size

    return one_round


def baseline(*, hot: bool) -> Callable[..., Awaitable[int]]:
    """One round of the baseline: lock two rows in id order, update both, insert, commit."""

    async def one_round(conn: asyncpg.Connection, rng: random.Random) -> int:
        debit = rng.randrange(1, ACCOUNT_COUNT + 1)
        credit = 0 if hot else rng.randrange(1, ACCOUNT_COUNT + 1)
        while credit == debit:
            credit = rng.randrange(1, ACCOUNT_COUNT + 1)
        async with conn.transaction():
            await conn.execute(
                "SELECT id FROM baseline_accounts WHERE id = ANY($1::bigint[]) ORDER BY id"
                " FOR UPDATE",
                [debit, credit],
            )
            await conn.execute(
                "UPDATE baseline_accounts SET balance = balance"
                " + CASE WHEN id = $2 THEN 1 ELSE -1 END WHERE id = ANY(ARRAY[$1, $2]::bigint[])",
                debit,
                credit,
            )
            await conn.execute(
                "INSERT INTO baseline_transfers (debit, credit, amount) VALUES ($1, $2, 1)",
                debit,
                credit,
            )
        return 1

    return one_round


async def run(dsn: str, duration_s: float) -> dict[str, float]:
    """Run every measurement and return the figures."""
    pool = await create_pool(dsn, min_size=4, max_size=20)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        books = await set_up(pool)
        async with pool.acquire() as conn:
            # An established database has statistics; without them the planner scans every
            # account for each posting (autovacuum would analyse only a minute later).
            await conn.execute("ANALYZE")
        plan: list[tuple[str, int, Callable[..., Awaitable[int]]]] = [
            ("single_c1_tps", 1, ours(books, 1, hot=False)),
            ("single_c16_tps", 16, ours(books, 1, hot=False)),
            ("baseline_single_c16_tps", 16, baseline(hot=False)),
            ("batch100_tps", 1, ours(books, 100, hot=False)),
            ("batch1000_tps", 1, ours(books, 1_000, hot=False)),
            ("hot_single_c16_tps", 16, ours(books, 1, hot=True)),
            ("baseline_hot_single_c16_tps", 16, baseline(hot=True)),
            ("hot_batch1000_tps", 1, ours(books, 1_000, hot=True)),
        ]
        figures: dict[str, float] = {}
        for name, connections, one_round in plan:
            # Fresh connections per measurement: plans cached by one workload's statements
            # must not decide another's.
            fresh = await create_pool(dsn, min_size=connections, max_size=connections)
            try:
                figures[name] = round(await measure(fresh, connections, duration_s, one_round), 1)
            finally:
                await fresh.close()
            print(f"{name:<30} {figures[name]:>12,.1f}", flush=True)
        figures["single_ratio"] = round(
            figures["single_c16_tps"] / figures["baseline_single_c16_tps"], 3
        )
        return figures
    finally:
        await pool.close()


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
