"""Concurrency in the style of pgledger's TestConcurrency: locks, bounds and the zero sum hold."""

import asyncio

import asyncpg

from ledger import Transfer, TransferResult, balance, create_transfers, run_in_transaction
from tests.db.conftest import Books, transfer


async def _post_one(pool: asyncpg.Pool, item: Transfer) -> TransferResult:
    async def work(conn: asyncpg.Connection) -> TransferResult:
        return (await create_transfers(conn, [item]))[0].result

    return await run_in_transaction(pool, work)


async def test_opposite_streams_of_500_end_where_they_started(
    pool: asyncpg.Pool, books: Books
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await create_transfers(
            conn,
            [
                transfer(books, books.world, books.alice, 1_000),
                transfer(books, books.world, books.bob, 1_000),
            ],
        )

    async def stream(debit: str, credit: str) -> list[TransferResult]:
        return [await _post_one(pool, transfer(books, debit, credit, 1)) for _ in range(500)]

    forward, backward = await asyncio.gather(
        stream(books.alice, books.bob), stream(books.bob, books.alice)
    )

    assert forward.count(TransferResult.OK) == 500
    assert backward.count(TransferResult.OK) == 500
    async with pool.acquire() as conn:
        alice = await balance(conn, books.marketplace_id, books.alice)
        bob = await balance(conn, books.marketplace_id, books.bob)
        entries = await conn.fetchval(
            "SELECT count(*) FROM ledger_entries WHERE account_id = $1", books.alice
        )
        violations = await conn.fetch("SELECT * FROM ledger_zero_sum_violations_v1()")
    assert (alice.posted, bob.posted) == (1_000, 1_000)
    assert entries == 1 + 1_000
    assert violations == []


async def test_fifty_concurrent_debits_never_overdraw_a_bounded_account(
    pool: asyncpg.Pool, books: Books
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await create_transfers(conn, [transfer(books, books.world, books.alice, 30)])

    results = await asyncio.gather(
        *(_post_one(pool, transfer(books, books.alice, books.bob, 1)) for _ in range(50))
    )

    assert results.count(TransferResult.OK) == 30
    assert results.count(TransferResult.EXCEEDS_CREDITS) == 20
    async with pool.acquire() as conn:
        alice = await balance(conn, books.marketplace_id, books.alice)
        lowest = await conn.fetchval(
            "SELECT min(credits_posted - debits_posted - debits_pending) FROM ledger_entries"
            " WHERE account_id = $1",
            books.alice,
        )
    assert (alice.posted, alice.available) == (0, 0)
    assert lowest == 0


async def test_concurrent_retries_of_one_transfer_apply_it_once(
    pool: asyncpg.Pool, books: Books
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await create_transfers(conn, [transfer(books, books.world, books.alice, 100)])
    same = transfer(books, books.alice, books.bob, 7)

    results = await asyncio.gather(*(_post_one(pool, same) for _ in range(20)))

    assert sorted(results) == sorted([TransferResult.OK] + [TransferResult.EXISTS] * 19)
    async with pool.acquire() as conn:
        bob = await balance(conn, books.marketplace_id, books.bob)
    assert bob.posted == 7
