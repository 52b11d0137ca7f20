"""Lifecycles across transfers: linked chains, ordering within a batch, two-phase transfers,
expiry, and the balances and history they leave behind, against hand-computed values.
"""

import asyncio
from datetime import datetime, timedelta

import asyncpg
import msgspec
import pytest

from ledger import (
    AccountBalance,
    Entry,
    Transfer,
    TransferOutcome,
    TransferPhase,
    TransferResult,
    account_entries,
    balance,
    balance_at,
    create_transfers,
    expire_pending_transfers,
    run_in_transaction,
)
from tests.db.conftest import Books, resolve, transfer

pytestmark = pytest.mark.db

R = TransferResult
P = TransferPhase


async def submit(pool: asyncpg.Pool, transfers: list[Transfer]) -> list[TransferResult]:
    async with pool.acquire() as conn, conn.transaction():
        outcomes = await create_transfers(conn, transfers)
    assert [outcome.id for outcome in outcomes] == [t.id for t in transfers]
    return [outcome.result for outcome in outcomes]


async def counters(pool: asyncpg.Pool, account_id: str) -> tuple[int, int, int, int, int]:
    """(debits_pending, debits_posted, credits_pending, credits_posted, version)."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT debits_pending, debits_posted, credits_pending, credits_posted, version"
            " FROM ledger_accounts WHERE id = $1",
            account_id,
        )
    assert row is not None
    return (row[0], row[1], row[2], row[3], row[4])


async def balances(pool: asyncpg.Pool, books: Books, account_id: str) -> AccountBalance:
    async with pool.acquire() as conn:
        return await balance(conn, books.marketplace_id, account_id)


def bal(posted: int, reserved: int, incoming: int) -> AccountBalance:
    return AccountBalance(
        posted=posted, reserved=reserved, available=posted - reserved, incoming=incoming
    )


async def stored_ids(pool: asyncpg.Pool) -> set[str]:
    async with pool.acquire() as conn:
        return {row["id"] for row in await conn.fetch("SELECT id FROM ledger_transfers")}


async def assert_books_balance(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await conn.fetch("SELECT * FROM ledger_zero_sum_violations_v1()") == []


# --------------------------------------------------------------------------------------------
# Linked chains
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("failing", [0, 1, 2])
async def test_linked_chain_is_all_or_nothing(
    pool: asyncpg.Pool, books: Books, failing: int
) -> None:
    assert await submit(pool, [transfer(books, books.world, books.alice, 100)]) == [R.OK]
    before = {a: await counters(pool, a) for a in (books.alice, books.bob, books.world)}
    # alice -> bob 30, then bob spends what the chain just gave him, then alice -> world 10;
    # the member at position `failing` asks for far more than anyone has.
    chain = [
        transfer(books, books.alice, books.bob, 30, linked=True),
        transfer(books, books.bob, books.world, 30, linked=True),
        transfer(books, books.alice, books.world, 10),
    ]
    chain[failing] = msgspec.structs.replace(chain[failing], amount=10_000)
    after_chain = transfer(books, books.world, books.bob, 5)
    results = await submit(pool, [*chain, after_chain])
    expected = [R.LINKED_EVENT_FAILED] * 3
    expected[failing] = R.EXCEEDS_CREDITS
    assert results == [*expected, R.OK]
    # The chain left no trace; the unlinked transfer after it committed on its own.
    ids = await stored_ids(pool)
    assert {t.id for t in chain} & ids == set()
    assert after_chain.id in ids
    assert await counters(pool, books.alice) == before[books.alice]
    d_pending, d_posted, c_pending, c_posted, version = before[books.bob]
    assert await counters(pool, books.bob) == (d_pending, d_posted, c_pending, c_posted + 5, 1)
    d_pending, d_posted, c_pending, c_posted, version = before[books.world]
    assert await counters(pool, books.world) == (
        d_pending,
        d_posted + 5,
        c_pending,
        c_posted,
        version + 1,
    )
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ledger_entries") == 4


async def test_linked_chain_commits_together_with_a_group(pool: asyncpg.Pool, books: Books) -> None:
    chain = [
        transfer(books, books.world, books.alice, 100, linked=True),
        transfer(books, books.alice, books.bob, 70, linked=True),
        transfer(books, books.bob, books.world, 20),
    ]
    single = transfer(books, books.world, books.bob, 1)
    assert await submit(pool, [*chain, single]) == [R.OK] * 4
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, linked_group FROM ledger_transfers")
    assert {row["id"]: row["linked_group"] for row in rows} == {
        chain[0].id: chain[0].id,
        chain[1].id: chain[0].id,
        chain[2].id: chain[0].id,
        single.id: None,
    }
    assert await balances(pool, books, books.alice) == bal(30, 0, 0)
    assert await balances(pool, books, books.bob) == bal(51, 0, 0)
    assert await balances(pool, books, books.world) == bal(81, 0, 0)


async def test_resubmitted_linked_chain_is_exists(pool: asyncpg.Pool, books: Books) -> None:
    chain = [
        transfer(books, books.world, books.alice, 100, linked=True),
        transfer(books, books.alice, books.bob, 70),
    ]
    assert await submit(pool, chain) == [R.OK, R.OK]
    assert await submit(pool, chain) == [R.EXISTS, R.EXISTS]
    assert await counters(pool, books.alice) == (0, 70, 0, 100, 2)


async def test_chain_mixing_existing_and_new_members_is_refused(
    pool: asyncpg.Pool, books: Books
) -> None:
    """An existing member fails the chain like any other refusal: the new member is not
    written, and the existing one reports exists."""
    deposit = transfer(books, books.world, books.alice, 100)
    assert await submit(pool, [deposit]) == [R.OK]
    linked_again = msgspec.structs.replace(deposit, linked=True)
    spend = transfer(books, books.alice, books.bob, 10)
    assert await submit(pool, [linked_again, spend]) == [R.EXISTS, R.LINKED_EVENT_FAILED]
    assert spend.id not in await stored_ids(pool)
    assert await counters(pool, books.alice) == (0, 0, 0, 100, 1)


# --------------------------------------------------------------------------------------------
# Order within a batch
# --------------------------------------------------------------------------------------------


async def test_deposit_then_spend_in_one_batch(pool: asyncpg.Pool, books: Books) -> None:
    deposit = transfer(books, books.world, books.alice, 100)
    spend = transfer(books, books.alice, books.bob, 80)
    assert await submit(pool, [deposit, spend]) == [R.OK, R.OK]
    assert await counters(pool, books.alice) == (0, 80, 0, 100, 2)
    assert await counters(pool, books.bob) == (0, 0, 0, 80, 1)
    assert await counters(pool, books.world) == (0, 100, 0, 0, 1)


async def test_spend_then_deposit_in_one_batch(pool: asyncpg.Pool, books: Books) -> None:
    spend = transfer(books, books.alice, books.bob, 80)
    deposit = transfer(books, books.world, books.alice, 100)
    assert await submit(pool, [spend, deposit]) == [R.EXCEEDS_CREDITS, R.OK]
    assert await stored_ids(pool) == {deposit.id}
    assert await counters(pool, books.alice) == (0, 0, 0, 100, 1)
    assert await counters(pool, books.bob) == (0, 0, 0, 0, 0)


async def test_batch_spends_exactly_down_to_zero(pool: asyncpg.Pool, books: Books) -> None:
    batch = [
        transfer(books, books.world, books.alice, 100),
        transfer(books, books.alice, books.bob, 60),
        transfer(books, books.alice, books.bob, 40),
        transfer(books, books.alice, books.bob, 1),
    ]
    assert await submit(pool, batch) == [R.OK, R.OK, R.OK, R.EXCEEDS_CREDITS]
    assert await counters(pool, books.alice) == (0, 100, 0, 100, 3)
    assert await balances(pool, books, books.alice) == bal(0, 0, 0)


# --------------------------------------------------------------------------------------------
# Two-phase transfers
# --------------------------------------------------------------------------------------------


async def test_partial_post_releases_the_rest(pool: asyncpg.Pool, books: Books) -> None:
    hold = transfer(books, books.alice, books.bob, 60, phase=P.PENDING)
    deposit = transfer(books, books.world, books.alice, 100)
    assert await submit(pool, [deposit, hold]) == [R.OK, R.OK]
    assert await balances(pool, books, books.alice) == bal(100, 60, 0)
    assert await balances(pool, books, books.bob) == bal(0, 0, 60)
    assert await submit(pool, [resolve(books, hold.id, P.POST_PENDING, 45)]) == [R.OK]
    assert await balances(pool, books, books.alice) == bal(55, 0, 0)
    assert await balances(pool, books, books.bob) == bal(45, 0, 0)
    assert await counters(pool, books.alice) == (0, 45, 0, 100, 3)
    assert await counters(pool, books.bob) == (0, 0, 0, 45, 2)
    # The 15 released is spendable again: alice can now send exactly 55.
    assert await submit(pool, [transfer(books, books.alice, books.bob, 56)]) == [R.EXCEEDS_CREDITS]
    assert await submit(pool, [transfer(books, books.alice, books.bob, 55)]) == [R.OK]
    await assert_books_balance(pool)


async def test_void_releases_everything(pool: asyncpg.Pool, books: Books) -> None:
    hold = transfer(books, books.alice, books.bob, 60, phase=P.PENDING)
    assert await submit(pool, [transfer(books, books.world, books.alice, 100), hold]) == [R.OK] * 2
    assert await submit(pool, [resolve(books, hold.id, P.VOID_PENDING)]) == [R.OK]
    assert await balances(pool, books, books.alice) == bal(100, 0, 0)
    assert await balances(pool, books, books.bob) == bal(0, 0, 0)
    assert await counters(pool, books.alice) == (0, 0, 0, 100, 3)
    assert await counters(pool, books.bob) == (0, 0, 0, 0, 2)
    assert await submit(pool, [transfer(books, books.alice, books.bob, 100)]) == [R.OK]


async def test_post_and_void_of_pendings_created_in_the_same_batch(
    pool: asyncpg.Pool, books: Books
) -> None:
    hold = transfer(books, books.alice, books.bob, 60, phase=P.PENDING)
    other = transfer(books, books.alice, books.bob, 30, phase=P.PENDING)
    batch = [
        transfer(books, books.world, books.alice, 100),
        hold,
        resolve(books, hold.id, P.POST_PENDING, 45),
        other,
        resolve(books, other.id, P.VOID_PENDING),
        resolve(books, hold.id, P.POST_PENDING, 1),
        resolve(books, other.id, P.POST_PENDING),
        resolve(books, hold.id, P.VOID_PENDING),
        resolve(books, other.id, P.EXPIRE_PENDING),
    ]
    assert await submit(pool, batch) == [
        R.OK,
        R.OK,
        R.OK,
        R.OK,
        R.OK,
        R.PENDING_TRANSFER_ALREADY_POSTED,
        R.PENDING_TRANSFER_ALREADY_VOIDED,
        R.PENDING_TRANSFER_ALREADY_POSTED,
        R.PENDING_TRANSFER_ALREADY_VOIDED,
    ]
    assert await stored_ids(pool) == {t.id for t in batch[:5]}
    assert await balances(pool, books, books.alice) == bal(55, 0, 0)
    assert await balances(pool, books, books.bob) == bal(45, 0, 0)
    # One entry per leg: alice has 5 (deposit, hold, post, other, void), bob 4.
    assert await counters(pool, books.alice) == (0, 45, 0, 100, 5)
    assert await counters(pool, books.bob) == (0, 0, 0, 45, 4)
    await assert_books_balance(pool)


async def test_second_post_in_a_later_batch_is_already_posted(
    pool: asyncpg.Pool, books: Books
) -> None:
    hold = transfer(books, books.alice, books.bob, 60, phase=P.PENDING)
    assert await submit(pool, [transfer(books, books.world, books.alice, 100), hold]) == [R.OK] * 2
    first, second = (resolve(books, hold.id, P.POST_PENDING, 10) for _ in range(2))
    assert await submit(pool, [first, second]) == [R.OK, R.PENDING_TRANSFER_ALREADY_POSTED]
    assert await submit(pool, [resolve(books, hold.id, P.POST_PENDING, 10)]) == [
        R.PENDING_TRANSFER_ALREADY_POSTED
    ]
    assert await counters(pool, books.alice) == (0, 10, 0, 100, 3)


# --------------------------------------------------------------------------------------------
# Expiry
# --------------------------------------------------------------------------------------------


async def _timed_hold(pool: asyncpg.Pool, books: Books) -> Transfer:
    hold = transfer(books, books.alice, books.bob, 60, phase=P.PENDING, timeout_s=1)
    untimed = transfer(books, books.alice, books.bob, 10, phase=P.PENDING)
    deposit = transfer(books, books.world, books.alice, 100)
    assert await submit(pool, [deposit, hold, untimed]) == [R.OK] * 3
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT created_at, expires_at FROM ledger_transfers WHERE id = $1", hold.id
        )
    assert row["expires_at"] - row["created_at"] == timedelta(seconds=1)
    return hold


async def test_expiry_releases_once(pool: asyncpg.Pool, books: Books) -> None:
    hold = await _timed_hold(pool, books)
    async with pool.acquire() as conn, conn.transaction():
        assert await expire_pending_transfers(conn) == []  # not yet
    await asyncio.sleep(1.1)
    async with pool.acquire() as conn, conn.transaction():
        first = await expire_pending_transfers(conn)
    async with pool.acquire() as conn, conn.transaction():
        second = await expire_pending_transfers(conn)
    assert [outcome.result for outcome in first] == [R.OK]
    assert second == []
    # The untimed pending of 10 is untouched; the 60 is released.
    assert await balances(pool, books, books.alice) == bal(100, 10, 0)
    assert await balances(pool, books, books.bob) == bal(0, 0, 10)
    assert await counters(pool, books.alice) == (10, 0, 0, 100, 4)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, phase::text, amount, code, debit_account_id, credit_account_id"
            " FROM ledger_transfers WHERE pending_id = $1",
            hold.id,
        )
    assert [tuple(row.values()) for row in rows] == [
        (first[0].id, "EXPIRE_PENDING", 60, "deposit", books.alice, books.bob)
    ]
    # The expired reservation can be neither posted nor expired again.
    assert await submit(pool, [resolve(books, hold.id, P.POST_PENDING)]) == [
        R.PENDING_TRANSFER_EXPIRED
    ]
    await assert_books_balance(pool)


async def _wait_for_lock_waiters(pool: asyncpg.Pool, count: int) -> None:
    async with pool.acquire() as conn:
        for _ in range(500):
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting >= count:
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} transactions waiting for a lock")


async def test_concurrent_expiry_releases_once(pool: asyncpg.Pool, books: Books) -> None:
    hold = await _timed_hold(pool, books)
    await asyncio.sleep(1.1)

    async def sweep(conn: asyncpg.Connection) -> list[TransferOutcome]:
        return await expire_pending_transfers(conn)

    # Hold alice's row so that both sweepers find the same expired transfer, then both queue
    # on the account lock: the race is certain, not left to timing.
    async with pool.acquire() as blocker:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("SELECT 1 FROM ledger_accounts WHERE id = $1 FOR UPDATE", books.alice)
        sweeps = [asyncio.create_task(run_in_transaction(pool, sweep)) for _ in range(2)]
        await _wait_for_lock_waiters(pool, 2)
        await transaction.commit()
        results = await asyncio.gather(*sweeps)
    assert sorted([outcome.result for outcome in r] for r in results) == [[R.EXISTS], [R.OK]]
    assert results[0][0].id == results[1][0].id
    async with pool.acquire() as conn:
        expiries = await conn.fetchval(
            "SELECT count(*) FROM ledger_transfers WHERE pending_id = $1", hold.id
        )
    assert expiries == 1
    assert await counters(pool, books.alice) == (10, 0, 0, 100, 4)
    assert await counters(pool, books.bob) == (0, 0, 10, 0, 3)
    await assert_books_balance(pool)


# --------------------------------------------------------------------------------------------
# Balances, balances in the past, statements
# --------------------------------------------------------------------------------------------


async def _now(pool: asyncpg.Pool) -> datetime:
    async with pool.acquire() as conn:
        value: datetime = await conn.fetchval("SELECT clock_timestamp()")
    return value


async def test_balance_at_before_between_and_after(pool: asyncpg.Pool, books: Books) -> None:
    t0 = await _now(pool)
    assert await submit(pool, [transfer(books, books.world, books.alice, 100)]) == [R.OK]
    t1 = await _now(pool)
    hold = transfer(books, books.alice, books.bob, 60, phase=P.PENDING)
    assert await submit(pool, [hold]) == [R.OK]
    t2 = await _now(pool)
    assert await submit(pool, [resolve(books, hold.id, P.POST_PENDING, 45)]) == [R.OK]
    t3 = await _now(pool)

    expected = {
        books.alice: [bal(0, 0, 0), bal(100, 0, 0), bal(100, 60, 0), bal(55, 0, 0)],
        books.bob: [bal(0, 0, 0), bal(0, 0, 0), bal(0, 0, 60), bal(45, 0, 0)],
        books.world: [bal(0, 0, 0), bal(100, 0, 0), bal(100, 0, 0), bal(100, 0, 0)],
    }
    async with pool.acquire() as conn:
        for account_id, at_times in expected.items():
            actual = [
                await balance_at(conn, books.marketplace_id, account_id, at)
                for at in (t0, t1, t2, t3)
            ]
            assert actual == at_times
            assert await balance(conn, books.marketplace_id, account_id) == at_times[-1]
        # The boundary: a balance at the very instant of a posting includes it.
        posted_at = await conn.fetchval(
            "SELECT created_at FROM ledger_transfers WHERE id = $1", hold.id
        )
        just_before = posted_at - timedelta(microseconds=1)
        mkt = books.marketplace_id
        assert await balance_at(conn, mkt, books.alice, posted_at) == bal(100, 60, 0)
        assert await balance_at(conn, mkt, books.alice, just_before) == bal(100, 0, 0)


async def test_account_entries_running_balance(pool: asyncpg.Pool, books: Books) -> None:
    deposit = transfer(books, books.world, books.alice, 100, description="top-up")
    hold = transfer(books, books.alice, books.bob, 60, phase=P.PENDING, code="order_reserve")
    post = resolve(books, hold.id, P.POST_PENDING, 45, external_ref="tx_1")
    other = transfer(books, books.alice, books.bob, 20, phase=P.PENDING, code="order_reserve")
    void = resolve(books, other.id, P.VOID_PENDING)
    refund = transfer(books, books.bob, books.alice, 5, code="refund")
    # Two batches: the first is netted per account by the trigger, so the intermediate counters
    # of its entries come from the running sums, not from separate updates.
    assert await submit(pool, [deposit, hold, post]) == [R.OK] * 3
    assert await submit(pool, [other, void, refund]) == [R.OK] * 3

    async with pool.acquire() as conn:
        alice = await account_entries(conn, books.marketplace_id, books.alice)
        world = await account_entries(conn, books.marketplace_id, books.world)
        bob = await account_entries(conn, books.marketplace_id, books.bob)
        page = await account_entries(
            conn, books.marketplace_id, books.alice, after_version=2, limit=2
        )
        sequences = {
            row["id"]: row["sequence"]
            for row in await conn.fetch("SELECT id, sequence FROM ledger_transfers")
        }

    def view(entries: list[Entry]) -> list[tuple[object, ...]]:
        return [
            (
                e.version,
                e.transfer_id,
                e.phase,
                e.side,
                e.amount,
                e.counterparty_account_id,
                (e.debits_pending, e.debits_posted, e.credits_pending, e.credits_posted),
                e.balance_after,
            )
            for e in entries
        ]

    debit, credit = "DEBIT", "CREDIT"
    expected_alice = [
        (1, deposit.id, P.SINGLE, credit, 100, books.world, (0, 0, 0, 100), 100),
        (2, hold.id, P.PENDING, debit, 60, books.bob, (60, 0, 0, 100), 100),
        (3, post.id, P.POST_PENDING, debit, 45, books.bob, (0, 45, 0, 100), 55),
        (4, other.id, P.PENDING, debit, 20, books.bob, (20, 45, 0, 100), 55),
        (5, void.id, P.VOID_PENDING, debit, 20, books.bob, (0, 45, 0, 100), 55),
        (6, refund.id, P.SINGLE, credit, 5, books.bob, (0, 45, 0, 105), 60),
    ]
    assert view(alice) == expected_alice
    assert [(e.code, e.external_ref, e.description) for e in alice] == [
        ("deposit", None, "top-up"),
        ("order_reserve", None, None),
        ("order_reserve", "tx_1", None),
        ("order_reserve", None, None),
        ("order_reserve", None, None),
        ("refund", None, None),
    ]
    assert view(page) == expected_alice[2:4]
    assert [e.transfer_sequence for e in alice] == [sequences[e.transfer_id] for e in alice]
    assert [e.transfer_sequence for e in alice] == sorted(e.transfer_sequence for e in alice)
    # World is debit-normal: its balance is debits minus credits.
    assert view(world) == [(1, deposit.id, P.SINGLE, debit, 100, books.alice, (0, 100, 0, 0), 100)]
    assert [(e.version, e.side, e.counterparty_account_id, e.balance_after) for e in bob] == [
        (1, credit, books.alice, 0),
        (2, credit, books.alice, 45),
        (3, credit, books.alice, 45),
        (4, credit, books.alice, 45),
        (5, debit, books.alice, 40),
    ]
    assert [
        (e.debits_pending, e.debits_posted, e.credits_pending, e.credits_posted) for e in bob
    ] == [(0, 0, 60, 0), (0, 0, 0, 45), (0, 0, 20, 45), (0, 0, 0, 45), (0, 5, 0, 45)]
    # The latest entry always equals the account row.
    assert await counters(pool, books.alice) == (0, 45, 0, 105, 6)
    assert await counters(pool, books.bob) == (0, 5, 0, 45, 5)
