"""Group commit (ledger.group_commit) on the real database: shared commits, per-member outcomes.

Each test makes a table of its own with a deferred check, so a member can be refused at COMMIT
(as a ledger or audit deferred trigger would refuse it) without touching the product schema.
"""

import asyncio
import contextvars
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import OrderNotFound
from ledger.group_commit import GroupCommitter

pytestmark = pytest.mark.db

_TABLE = """
CREATE TABLE IF NOT EXISTS gc_rows (
    id text PRIMARY KEY,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    refused boolean NOT NULL DEFAULT false
);
CREATE OR REPLACE FUNCTION gc_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.refused THEN
        RAISE EXCEPTION 'refused at commit' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS gc_refuse ON gc_rows;
CREATE CONSTRAINT TRIGGER gc_refuse AFTER INSERT ON gc_rows
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gc_refuse();
TRUNCATE gc_rows;
"""

_REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")


async def _prepare(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute(_TABLE)


def _insert(
    row_id: str, *, refused: bool = False, fail: bool = False
) -> Callable[[asyncpg.Connection], Awaitable[str]]:
    async def work(conn: asyncpg.Connection) -> str:
        await conn.execute("INSERT INTO gc_rows (id, refused) VALUES ($1, $2)", row_id, refused)
        if fail:
            raise OrderNotFound(order_id=row_id)
        return row_id

    return work


async def _rows(pool: asyncpg.Pool) -> dict[str, int]:
    """Committed rows and the transaction each was written in."""
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, xid::text::bigint AS xid FROM gc_rows")
    return {row["id"]: row["xid"] for row in rows}


async def test_concurrent_members_share_transactions_and_all_commit(pool: asyncpg.Pool) -> None:
    await _prepare(pool)
    committer = GroupCommitter(pool, max_group=16)
    names = [f"r{index}" for index in range(64)]
    results = await asyncio.gather(*(committer.run("mkt", _insert(name)) for name in names))
    assert results == names
    rows = await _rows(pool)
    assert set(rows) == set(names)
    transactions = set(rows.values())
    # 64 members in groups of at most 16: at least 4 transactions, far fewer than 64.
    assert 4 <= len(transactions) < 64


async def test_a_failing_member_writes_nothing_and_the_others_commit(pool: asyncpg.Pool) -> None:
    await _prepare(pool)
    committer = GroupCommitter(pool)
    outcomes = await asyncio.gather(
        committer.run("mkt", _insert("a")),
        committer.run("mkt", _insert("b", fail=True)),
        committer.run("mkt", _insert("c")),
        return_exceptions=True,
    )
    assert outcomes[0] == "a"
    assert isinstance(outcomes[1], OrderNotFound)
    assert outcomes[2] == "c"
    rows = await _rows(pool)
    assert set(rows) == {"a", "c"}
    assert rows["a"] == rows["c"]  # one shared transaction


async def test_a_group_refused_at_commit_runs_each_member_alone(pool: asyncpg.Pool) -> None:
    await _prepare(pool)
    committer = GroupCommitter(pool)
    outcomes = await asyncio.gather(
        committer.run("mkt", _insert("a")),
        committer.run("mkt", _insert("bad", refused=True)),
        committer.run("mkt", _insert("c")),
        return_exceptions=True,
    )
    assert outcomes[0] == "a"
    assert isinstance(outcomes[1], asyncpg.CheckViolationError)
    assert outcomes[2] == "c"
    rows = await _rows(pool)
    assert set(rows) == {"a", "c"}
    assert rows["a"] != rows["c"]  # the retries ran in transactions of their own


async def test_a_member_waiting_on_an_outside_lock_is_set_aside(pool: asyncpg.Pool) -> None:
    await _prepare(pool)
    async with pool.acquire() as holder:
        await holder.execute("INSERT INTO gc_rows (id) VALUES ('held')")
    committer = GroupCommitter(pool, lock_timeout_ms=50)

    async def update_held(conn: asyncpg.Connection) -> str:
        await conn.execute("UPDATE gc_rows SET refused = false WHERE id = 'held'")
        return "held"

    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM gc_rows WHERE id = 'held' FOR UPDATE")
        waiting = asyncio.gather(
            committer.run("mkt", _insert("a")),
            committer.run("mkt", update_held),
            committer.run("mkt", _insert("c")),
        )
        # The two others commit while the lock is still held.
        for _ in range(100):
            if {"a", "c"} <= set(await _rows(pool)):
                break
            await asyncio.sleep(0.02)
        assert {"a", "c"} <= set(await _rows(pool))
        assert not waiting.done()
    assert await waiting == ["a", "held", "c"]


async def test_each_member_runs_in_its_callers_context(pool: asyncpg.Pool) -> None:
    await _prepare(pool)
    committer = GroupCommitter(pool)

    async def seen(conn: asyncpg.Connection) -> str:
        await conn.execute("SELECT 1")
        return _REQUEST.get()

    async def caller(name: str) -> str:
        _REQUEST.set(name)
        return await committer.run("mkt", seen)

    names = [f"req{index}" for index in range(10)]
    assert await asyncio.gather(*(caller(name) for name in names)) == names


async def test_keys_are_independent_queues(pool: asyncpg.Pool) -> None:
    await _prepare(pool)
    committer = GroupCommitter(pool)
    results = await asyncio.gather(
        *(committer.run(f"mkt{index % 2}", _insert(f"r{index}")) for index in range(20))
    )
    assert sorted(results) == sorted(f"r{index}" for index in range(20))
    rows = await _rows(pool)
    even = {rows[f"r{index}"] for index in range(0, 20, 2)}
    odd = {rows[f"r{index}"] for index in range(1, 20, 2)}
    assert not even & odd  # two marketplaces never share a transaction


_MEMBER = st.sampled_from(["ok", "fail", "refused"])


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(kinds=st.lists(_MEMBER, min_size=1, max_size=12), max_group=st.integers(1, 6))
async def test_every_member_gets_the_outcome_it_would_have_alone(
    pool: asyncpg.Pool, kinds: list[str], max_group: int
) -> None:
    await _prepare(pool)
    committer = GroupCommitter(pool, max_group=max_group)
    outcomes = await asyncio.gather(
        *(
            committer.run(
                "mkt", _insert(f"r{index}", refused=kind == "refused", fail=kind == "fail")
            )
            for index, kind in enumerate(kinds)
        ),
        return_exceptions=True,
    )
    for index, (kind, outcome) in enumerate(zip(kinds, outcomes, strict=True)):
        if kind == "ok":
            assert outcome == f"r{index}"
        elif kind == "fail":
            assert isinstance(outcome, OrderNotFound)
        else:
            assert isinstance(outcome, asyncpg.CheckViolationError)
    committed = set(await _rows(pool))
    assert committed == {f"r{index}" for index, kind in enumerate(kinds) if kind == "ok"}
