"""run_in_transaction: the whole block is retried on serialization failures and deadlocks."""

import asyncpg
import pytest

from common.ids import new_id
from ledger import run_in_transaction

RAISE_SQLSTATE = "DO $$ BEGIN RAISE EXCEPTION 'simulated' USING ERRCODE = '{}'; END $$"


@pytest.mark.parametrize("sqlstate", ["serialization_failure", "deadlock_detected"])
async def test_the_whole_block_is_retried_and_its_first_attempt_rolled_back(
    pool: asyncpg.Pool, sqlstate: str
) -> None:
    attempts: list[str] = []

    async def work(conn: asyncpg.Connection) -> int:
        marketplace_id = new_id("mkt_")
        attempts.append(marketplace_id)
        await conn.execute("INSERT INTO marketplaces (id, name) VALUES ($1, $1)", marketplace_id)
        if len(attempts) == 1:
            await conn.execute(RAISE_SQLSTATE.format(sqlstate))
        return len(attempts)

    assert await run_in_transaction(pool, work, base_delay_s=0.001) == 2
    async with pool.acquire() as conn:
        stored = await conn.fetch("SELECT id FROM marketplaces ORDER BY id")
    assert [row["id"] for row in stored] == [attempts[1]]


async def test_other_errors_are_not_retried(pool: asyncpg.Pool) -> None:
    attempts: list[int] = []

    async def work(conn: asyncpg.Connection) -> None:
        attempts.append(1)
        await conn.execute(RAISE_SQLSTATE.format("check_violation"))

    with pytest.raises(asyncpg.CheckViolationError):
        await run_in_transaction(pool, work)
    assert attempts == [1]


async def test_retries_stop_after_the_last_attempt(pool: asyncpg.Pool) -> None:
    attempts: list[int] = []

    async def work(conn: asyncpg.Connection) -> None:
        attempts.append(1)
        await conn.execute(RAISE_SQLSTATE.format("serialization_failure"))

    with pytest.raises(asyncpg.SerializationError):
        await run_in_transaction(pool, work, attempts=3, base_delay_s=0.001)
    assert attempts == [1, 1, 1]
