"""The audit log in the database: the commit-time chain, append-only rows, tampering, races.

Entries are written with ``flows.audit.record_audit`` in real transactions; the chain is checked
with ``verify_chain`` (what ``GET /audit/logs/verify`` and ``offerhub audit verify`` run).
Tampering goes around the append-only trigger the way only the tables' owner can
(``ALTER TABLE ... DISABLE TRIGGER``), and must be found.
"""

import asyncio
import random
from datetime import UTC, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.ids import new_id
from flows.audit import (
    GENESIS_HASH,
    AuditContext,
    ChainVerification,
    audit_context,
    chain_hash,
    entry_hash,
    record_audit,
    verify_all_chains,
    verify_chain,
)
from ledger import run_in_transaction
from tests.db.conftest import create_marketplace

pytestmark = pytest.mark.db

KEY_ID = "key_" + "k" * 32


async def _record(conn: asyncpg.Connection, marketplace_id: str, n: int, **fields: Any) -> None:
    await record_audit(
        conn,
        marketplace_id=marketplace_id,
        actor_type=fields.pop("actor_type", "API_KEY"),
        actor_id=fields.pop("actor_id", KEY_ID),
        action=fields.pop("action", "ORDER_CREATED"),
        resource_type=fields.pop("resource_type", "order"),
        resource_id=fields.pop("resource_id", f"ord_{n}"),
        before=fields.pop("before", None),
        after=fields.pop("after", {"n": n}),
        **fields,
    )


async def _entries(pool: asyncpg.Pool, marketplace_id: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT * FROM audit_log WHERE marketplace_id = $1 ORDER BY chain_index",
            marketplace_id,
        )
    )


async def _verify(
    pool: asyncpg.Pool, marketplace_id: str, start: Any = None, end: Any = None
) -> ChainVerification:
    async with pool.acquire() as conn:
        return await verify_chain(conn, marketplace_id, start, end)


async def _market_with_entries(pool: asyncpg.Pool, count: int) -> str:
    async with pool.acquire() as conn:
        marketplace_id = await create_marketplace(conn)
        for n in range(count):
            async with conn.transaction():
                await _record(conn, marketplace_id, n)
    return marketplace_id


async def test_entries_join_the_chain_at_commit(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        marketplace_id = await create_marketplace(conn)
        context = AuditContext(request_id="req-1", idempotency_key="idem-1", ip="10.0.0.7")
        async with conn.transaction():
            with audit_context(context):
                await _record(conn, marketplace_id, 1, before={"status": "A"})
                await _record(conn, marketplace_id, 2, request_id="explicit")
            # Staged until the commit: the chain does not know them yet.
            assert await conn.fetchval("SELECT count(*) FROM audit_log") == 0
            assert await conn.fetchval("SELECT count(*) FROM audit_pending") == 2
    assert await pool.fetchval("SELECT count(*) FROM audit_pending") == 0
    first, second = await _entries(pool, marketplace_id)
    assert (first["chain_index"], second["chain_index"]) == (1, 2)
    assert first["prev_hash"] == GENESIS_HASH
    assert second["prev_hash"] == first["hash"]
    assert first["occurred_at"] <= second["occurred_at"]
    assert (first["request_id"], second["request_id"]) == ("req-1", "explicit")
    assert first["summary"] == {
        "before": {"status": "A"},
        "after": {"n": 1},
        "idempotency_key": "idem-1",
        "ip": "10.0.0.7",
    }
    assert (first["actor_type"], first["actor_id"], first["action"]) == (
        "API_KEY",
        KEY_ID,
        "ORDER_CREATED",
    )
    # The stored hash is what the documented encoding gives.
    digest = entry_hash(
        entry_id=first["id"],
        marketplace_id=marketplace_id,
        actor_type="API_KEY",
        actor_id=KEY_ID,
        action="ORDER_CREATED",
        resource_type="order",
        resource_id="ord_1",
        request_id="req-1",
        summary=first["summary"],
    )
    assert first["hash"] == chain_hash(GENESIS_HASH, 1, first["occurred_at"], digest)
    head = await pool.fetchrow(
        "SELECT * FROM audit_chain_heads WHERE marketplace_id = $1", marketplace_id
    )
    assert (head["last_index"], head["last_id"], head["last_hash"]) == (
        2,
        second["id"],
        second["hash"],
    )
    result = await _verify(pool, marketplace_id)
    assert (result.valid, result.entries_checked, result.first_invalid_id) == (True, 2, None)
    assert result.head_hash == second["hash"]


async def test_a_rolled_back_change_leaves_no_entry_and_no_gap(pool: asyncpg.Pool) -> None:
    marketplace_id = await _market_with_entries(pool, 1)
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await _record(conn, marketplace_id, 99)
        await transaction.rollback()
        async with conn.transaction():
            await _record(conn, marketplace_id, 2)
    assert [row["chain_index"] for row in await _entries(pool, marketplace_id)] == [1, 2]
    assert (await _verify(pool, marketplace_id)).valid


async def test_the_context_is_not_seen_outside_its_block(pool: asyncpg.Pool) -> None:
    marketplace_id = await _market_with_entries(pool, 0)
    async with pool.acquire() as conn:
        with audit_context(AuditContext(request_id="inside")):
            await _record(conn, marketplace_id, 1)
        await _record(conn, marketplace_id, 2)
    first, second = await _entries(pool, marketplace_id)
    assert (first["request_id"], second["request_id"]) == ("inside", None)
    assert second["summary"] == {"before": None, "after": {"n": 2}}


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'RELEASED'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ],
)
async def test_entries_cannot_be_changed_or_removed(pool: asyncpg.Pool, statement: str) -> None:
    marketplace_id = await _market_with_entries(pool, 2)
    with pytest.raises(asyncpg.RestrictViolationError) as refused:
        await pool.execute(statement)
    assert refused.value.constraint_name == "audit_log_append_only"
    assert len(await _entries(pool, marketplace_id)) == 2


async def test_a_chain_head_cannot_be_removed(pool: asyncpg.Pool) -> None:
    await _market_with_entries(pool, 1)
    for statement in ("DELETE FROM audit_chain_heads", "TRUNCATE audit_chain_heads CASCADE"):
        with pytest.raises(asyncpg.IntegrityConstraintViolationError) as refused:
            await pool.execute(statement)
        assert refused.value.constraint_name == "audit_chain_heads_kept"


async def _tamper(pool: asyncpg.Pool, statement: str, *args: Any) -> None:
    """Run ``statement`` with the append-only trigger off, as the tables' owner could."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        await conn.execute(statement, *args)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")


async def test_an_altered_entry_is_reported(pool: asyncpg.Pool) -> None:
    marketplace_id = await _market_with_entries(pool, 5)
    entries = await _entries(pool, marketplace_id)
    await _tamper(
        pool,
        'UPDATE audit_log SET summary = \'{"before": null, "after": {"n": 1000}}\''
        " WHERE marketplace_id = $1 AND chain_index = 3",
        marketplace_id,
    )
    result = await _verify(pool, marketplace_id)
    assert (result.valid, result.first_invalid_id, result.entries_checked) == (
        False,
        entries[2]["id"],
        3,
    )
    # Rewriting that entry's own hash as well moves the break to the next link.
    altered = await pool.fetchrow(
        "SELECT * FROM audit_log WHERE marketplace_id = $1 AND chain_index = 3", marketplace_id
    )
    digest = entry_hash(
        entry_id=altered["id"],
        marketplace_id=marketplace_id,
        actor_type=altered["actor_type"],
        actor_id=altered["actor_id"],
        action=altered["action"],
        resource_type=altered["resource_type"],
        resource_id=altered["resource_id"],
        request_id=altered["request_id"],
        summary=altered["summary"],
    )
    forged = chain_hash(altered["prev_hash"], 3, altered["occurred_at"], digest)
    await _tamper(
        pool,
        "UPDATE audit_log SET hash = $2 WHERE marketplace_id = $1 AND chain_index = 3",
        marketplace_id,
        forged,
    )
    relinked = await _verify(pool, marketplace_id)
    assert (relinked.valid, relinked.first_invalid_id) == (False, entries[3]["id"])


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("actor_id", "key_" + "x" * 32),
        ("request_id", "another-request"),
        ("resource_id", "ord_other"),
        ("occurred_at", None),  # moved by one second
    ],
)
async def test_every_column_is_covered_by_the_hash(
    pool: asyncpg.Pool, column: str, value: Any
) -> None:
    marketplace_id = await _market_with_entries(pool, 3)
    entries = await _entries(pool, marketplace_id)
    if column == "occurred_at":
        value = entries[1]["occurred_at"] + timedelta(seconds=1)
    # Column names come from the parameter list above, never from input.
    await _tamper(
        pool,
        f"UPDATE audit_log SET {column} = $2 WHERE marketplace_id = $1 AND chain_index = 2",
        marketplace_id,
        value,
    )
    result = await _verify(pool, marketplace_id)
    assert (result.valid, result.first_invalid_id) == (False, entries[1]["id"])


async def test_a_deleted_entry_is_reported_by_the_next_one(pool: asyncpg.Pool) -> None:
    marketplace_id = await _market_with_entries(pool, 4)
    entries = await _entries(pool, marketplace_id)
    await _tamper(
        pool, "DELETE FROM audit_log WHERE marketplace_id = $1 AND chain_index = 2", marketplace_id
    )
    result = await _verify(pool, marketplace_id)
    assert (result.valid, result.first_invalid_id) == (False, entries[2]["id"])


async def test_entries_cut_off_the_end_are_reported(pool: asyncpg.Pool) -> None:
    marketplace_id = await _market_with_entries(pool, 3)
    entries = await _entries(pool, marketplace_id)
    await _tamper(
        pool, "DELETE FROM audit_log WHERE marketplace_id = $1 AND chain_index = 3", marketplace_id
    )
    result = await _verify(pool, marketplace_id)
    assert (result.valid, result.first_invalid_id, result.entries_checked) == (
        False,
        entries[2]["id"],
        2,
    )
    await _tamper(pool, "DELETE FROM audit_log WHERE marketplace_id = $1", marketplace_id)
    emptied = await _verify(pool, marketplace_id)
    assert (emptied.valid, emptied.first_invalid_id, emptied.entries_checked) == (
        False,
        entries[2]["id"],
        0,
    )


async def test_a_time_range_checks_only_its_entries(pool: asyncpg.Pool) -> None:
    marketplace_id = await _market_with_entries(pool, 6)
    entries = await _entries(pool, marketplace_id)
    start, end = entries[2]["occurred_at"], entries[4]["occurred_at"]
    window = await _verify(pool, marketplace_id, start, end)
    assert (window.valid, window.entries_checked, window.head_hash) == (
        True,
        2,
        entries[3]["hash"],
    )
    tail = await _verify(pool, marketplace_id, start)
    assert (tail.valid, tail.entries_checked, tail.head_hash) == (True, 4, entries[5]["hash"])
    later = end + timedelta(days=1)
    empty = await _verify(pool, marketplace_id, later)
    assert (empty.valid, empty.entries_checked, empty.head_hash) == (True, 0, None)
    # Tampering before the window is not the window's business; inside it, it is.
    await _tamper(
        pool,
        "UPDATE audit_log SET action = 'RELEASED' WHERE marketplace_id = $1 AND chain_index = 1",
        marketplace_id,
    )
    assert (await _verify(pool, marketplace_id, start, end)).valid
    whole = await _verify(pool, marketplace_id)
    assert (whole.valid, whole.first_invalid_id) == (False, entries[0]["id"])


async def test_concurrent_writers_of_one_marketplace_keep_one_chain(pool: asyncpg.Pool) -> None:
    marketplace_id = await _market_with_entries(pool, 0)
    other = await _market_with_entries(pool, 0)

    async def change(n: int) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            await _record(conn, marketplace_id, n)
            # Interleave the transactions: each holds its changes open a little.
            await asyncio.sleep(random.uniform(0, 0.02))
            await _record(conn, marketplace_id, n, action="FUNDS_RESERVED")
            await _record(conn, other, n)

        await run_in_transaction(pool, work)

    await asyncio.gather(*(change(n) for n in range(20)))
    entries = await _entries(pool, marketplace_id)
    assert [row["chain_index"] for row in entries] == list(range(1, 41))
    # Both entries of one transaction are adjacent: a commit appends its entries together.
    for created, reserved in zip(entries[::2], entries[1::2], strict=True):
        assert created["resource_id"] == reserved["resource_id"]
        assert (created["action"], reserved["action"]) == ("ORDER_CREATED", "FUNDS_RESERVED")
    assert [row["occurred_at"] for row in entries] == sorted(row["occurred_at"] for row in entries)
    async with pool.acquire() as conn:
        results = await verify_all_chains(conn)
    assert {marketplace_id, other} <= set(results)
    assert (results[marketplace_id].valid, results[marketplace_id].entries_checked) == (True, 40)
    assert (results[other].valid, results[other].entries_checked) == (True, 20)


async def test_secrets_never_reach_the_table(pool: asyncpg.Pool) -> None:
    marketplace_id = await _market_with_entries(pool, 0)
    api_key = "ohk_test_key_" + "a" * 32 + "_" + "0" * 48
    seed = "S" + "A" * 55
    async with pool.acquire() as conn:
        await _record(
            conn,
            marketplace_id,
            1,
            after={
                "key": api_key,
                "webhook_secret": "whsec_abc",
                "headers": {"Authorization": "Bearer xyz", "x-tw-signature": "ff00"},
                "sealed_secret": b"\x01\x02",
                "public_key": "G" + "B" * 55,
                "email": "Jane.Doe@example.com",
                "note": f"key {api_key} and seed {seed} for jane@shop.example",
            },
        )
    [entry] = await _entries(pool, marketplace_id)
    stored = msgspec.json.encode(entry["summary"]).decode()
    for secret in (api_key, seed, "whsec_abc", "xyz", "ff00", "Jane.Doe"):
        assert secret not in stored
    assert entry["summary"]["after"] == {
        "headers": {},
        "public_key": "G" + "B" * 55,
        "email": "J***@example.com",
        "note": "key [REDACTED] and seed [REDACTED] for j***@shop.example",
    }


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text()
    | st.datetimes(timezones=st.just(UTC)),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(before=_JSON, after=_JSON)
async def test_any_summary_round_trips_into_a_valid_chain(
    pool: asyncpg.Pool, before: Any, after: Any
) -> None:
    # State is built inside the example: a marketplace of its own each time.
    marketplace_id = await _market_with_entries(pool, 1)
    async with pool.acquire() as conn:
        await record_audit(
            conn,
            marketplace_id=marketplace_id,
            actor_type="SYSTEM",
            actor_id=None,
            action="BALANCE_ADJUSTED",
            resource_type="balance",
            resource_id=new_id("usr_"),
            before=before,
            after=after,
        )
    result = await _verify(pool, marketplace_id)
    assert (result.valid, result.entries_checked) == (True, 2)
