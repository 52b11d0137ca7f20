"""The outbox reader: stable bounds never pass an uncommitted lower sequence; filters; retention."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.ids import new_id
from flows.event_catalog import EVENT_TYPES, EventFilter, parse_resources, parse_types
from flows.event_stream import (
    Checkpoint,
    RetentionGap,
    purge_events,
    read_events,
    retention_gap,
    running_horizon,
    take_checkpoint,
)
from flows.events import Event, emit
from tests.db.conftest import create_marketplace

pytestmark = pytest.mark.db

EVERYTHING = EventFilter()


async def _emit(
    conn: asyncpg.Connection,
    marketplace_id: str,
    event_type: str = "order.created",
    resource_id: str | None = None,
) -> Event:
    kind = event_type.split(".", 1)[0]
    return await emit(
        conn,
        marketplace_id=marketplace_id,
        type=event_type,
        resource_type=kind,
        resource_id=resource_id or new_id("ord_"),
        data={"n": 1},
    )


async def _stable(pool: asyncpg.Pool, checkpoint: Checkpoint) -> bool:
    async with pool.acquire() as conn:
        return checkpoint.is_stable(await running_horizon(conn))


async def _checkpoint(pool: asyncpg.Pool) -> Checkpoint:
    async with pool.acquire() as conn:
        return await take_checkpoint(conn)


async def _read_all(pool: asyncpg.Pool, marketplace_id: str, through: int) -> list[int]:
    async with pool.acquire() as conn:
        page = await read_events(
            conn, marketplace_id, after=0, through=through, event_filter=EVERYTHING, limit=100
        )
    return [event.sequence for event in page.events]


@pytest.fixture
async def marketplace(pool: asyncpg.Pool) -> str:
    async with pool.acquire() as conn:
        return await create_marketplace(conn)


@pytest.fixture
async def open_writer(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection whose transaction the test commits or rolls back itself."""
    async with pool.acquire() as conn:
        yield conn
        if conn.is_in_transaction():
            await conn.execute("ROLLBACK")


async def test_a_committed_event_is_stable_after_a_checkpoint(
    pool: asyncpg.Pool, marketplace: str
) -> None:
    async with pool.acquire() as conn:
        event = await _emit(conn, marketplace)
    checkpoint = await _checkpoint(pool)
    assert checkpoint.sequence_bound >= event.sequence
    assert await _stable(pool, checkpoint)
    assert await _read_all(pool, marketplace, checkpoint.sequence_bound) == [event.sequence]


@pytest.mark.parametrize("ending", ["COMMIT", "ROLLBACK"])
async def test_an_in_flight_lower_sequence_holds_back_a_committed_higher_one(
    pool: asyncpg.Pool, marketplace: str, open_writer: asyncpg.Connection, ending: str
) -> None:
    await open_writer.execute("BEGIN")
    lower = await _emit(open_writer, marketplace)
    async with pool.acquire() as conn:
        higher = await _emit(conn, marketplace)  # committed at once
    assert higher.sequence > lower.sequence
    checkpoint = await _checkpoint(pool)
    assert checkpoint.sequence_bound >= higher.sequence
    for _ in range(3):
        assert not await _stable(pool, checkpoint)
        await asyncio.sleep(0.01)

    await open_writer.execute(ending)
    assert await _stable(pool, checkpoint)
    delivered = await _read_all(pool, marketplace, checkpoint.sequence_bound)
    expected = [lower.sequence, higher.sequence] if ending == "COMMIT" else [higher.sequence]
    assert delivered == expected


async def test_an_older_transaction_id_with_a_higher_sequence_is_held_back_too(
    pool: asyncpg.Pool, marketplace: str, open_writer: asyncpg.Connection
) -> None:
    """Why ``writer_xid < xmin`` alone is not the rule (flows/event_stream.py docstring).

    A takes its transaction id first, B draws the lower sequence and stays open, A commits the
    higher one. A's id is below every running id, yet B's event is still in flight.
    """
    async with pool.acquire() as early:
        await early.execute("BEGIN")
        early_xid = await early.fetchval("SELECT pg_current_xact_id()")
        await open_writer.execute("BEGIN")
        lower = await _emit(open_writer, marketplace)
        higher = await _emit(early, marketplace)
        await early.execute("COMMIT")
    async with pool.acquire() as conn:
        horizon = await running_horizon(conn)
        writer = await conn.fetchval(
            "SELECT writer_xid FROM events WHERE sequence = $1", higher.sequence
        )
    assert writer == early_xid
    assert writer < horizon  # the naive rule would deliver `higher` now
    checkpoint = await _checkpoint(pool)
    assert checkpoint.sequence_bound >= higher.sequence
    assert not await _stable(pool, checkpoint)

    await open_writer.execute("COMMIT")
    assert await _stable(pool, checkpoint)
    assert await _read_all(pool, marketplace, checkpoint.sequence_bound) == [
        lower.sequence,
        higher.sequence,
    ]


async def test_the_writer_holds_its_transaction_id_before_its_sequence(
    pool: asyncpg.Pool, marketplace: str
) -> None:
    """The trigger draws the sequence after the id: a checkpoint taken between the two would
    otherwise miss a writer (flows/event_stream.py)."""
    async with pool.acquire() as conn:
        first = await _emit(conn, marketplace)
        second = await _emit(conn, marketplace)
        rows = await conn.fetch(
            "SELECT sequence, writer_xid FROM events WHERE marketplace_id = $1 ORDER BY sequence",
            marketplace,
        )
        triggers = await conn.fetchval(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'events'::regclass"
            " AND tgname = 'events_sequence_after_xid'"
        )
    assert [row["sequence"] for row in rows] == [first.sequence, second.sequence]
    assert rows[0]["writer_xid"] < rows[1]["writer_xid"]
    assert triggers == 1


async def test_a_full_page_stops_at_its_last_event_and_a_short_one_at_the_bound(
    pool: asyncpg.Pool, marketplace: str
) -> None:
    async with pool.acquire() as conn:
        sequences = [(await _emit(conn, marketplace)).sequence for _ in range(5)]
        bound = sequences[-1] + 10
        first = await read_events(
            conn, marketplace, after=0, through=bound, event_filter=EVERYTHING, limit=3
        )
        rest = await read_events(
            conn,
            marketplace,
            after=first.position,
            through=bound,
            event_filter=EVERYTHING,
            limit=3,
        )
        nothing = await read_events(
            conn, marketplace, after=bound, through=bound, event_filter=EVERYTHING, limit=3
        )
    assert [event.sequence for event in first.events] == sequences[:3]
    assert first.position == sequences[2]
    assert [event.sequence for event in rest.events] == sequences[3:]
    assert rest.position == bound
    assert nothing.events == []
    assert nothing.position == bound


async def test_a_marketplace_reads_only_its_own_events(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        mine, theirs = await create_marketplace(conn), await create_marketplace(conn)
        own = await _emit(conn, mine)
        await _emit(conn, theirs)
        page = await read_events(
            conn, mine, after=0, through=own.sequence + 10, event_filter=EVERYTHING, limit=10
        )
    assert [event.id for event in page.events] == [own.id]


_TYPES = sorted(EVENT_TYPES)
_PREFIXES = sorted({name.split(".", 1)[0] + ".*" for name in EVENT_TYPES})
_KINDS = ["order", "user", "balance", "topup"]


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    emitted=st.lists(
        st.tuples(st.sampled_from(_TYPES), st.integers(0, 2)), min_size=1, max_size=12
    ),
    type_items=st.none() | st.lists(st.sampled_from([*_TYPES, *_PREFIXES]), min_size=1),
    kind_items=st.lists(st.sampled_from(_KINDS), max_size=2),
    id_picks=st.lists(st.integers(0, 2), max_size=2),
)
async def test_the_sql_filter_keeps_exactly_what_the_filter_matches(
    pool: asyncpg.Pool,
    emitted: list[tuple[str, int]],
    type_items: list[str] | None,
    kind_items: list[str],
    id_picks: list[int],
) -> None:
    resource_ids = [new_id("ord_") for _ in range(3)]
    resources = [*kind_items, *(resource_ids[pick] for pick in id_picks)]
    exact, prefixes = parse_types(None if type_items is None else ",".join(type_items))
    kinds, ids = parse_resources(",".join(resources) if resources else None)
    event_filter = EventFilter(
        exact_types=exact, type_prefixes=prefixes, resource_types=kinds, resource_ids=ids
    )
    async with pool.acquire() as conn:
        marketplace = await create_marketplace(conn)
        events = [
            await _emit(conn, marketplace, event_type, resource_ids[pick])
            for event_type, pick in emitted
        ]
        page = await read_events(
            conn,
            marketplace,
            after=0,
            through=events[-1].sequence,
            event_filter=event_filter,
            limit=100,
        )
    expected = [
        event.id
        for event in events
        if event_filter.matches(event.type, event.resource_type, event.resource_id)
    ]
    assert [event.id for event in page.events] == expected


async def _emit_at(conn: asyncpg.Connection, marketplace_id: str, age: timedelta) -> Event:
    """An event stamped ``age`` ago (as a transaction that started then would stamp it)."""
    row = await conn.fetchrow(
        "INSERT INTO events (id, marketplace_id, type, resource_type, resource_id, data,"
        " occurred_at) VALUES ($1, $2, 'order.created', 'order', $3, '{}', now() - $4::interval)"
        " RETURNING id, sequence, type, occurred_at, marketplace_id, resource_type,"
        " resource_id, data",
        new_id("evt_"),
        marketplace_id,
        new_id("ord_"),
        age,
    )
    assert row is not None
    return Event(**dict(row))


async def test_purge_deletes_old_events_and_marks_the_gap_per_marketplace(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        first, second = await create_marketplace(conn), await create_marketplace(conn)
        old = [await _emit_at(conn, first, timedelta(days=9)) for _ in range(3)]
        kept = await _emit_at(conn, first, timedelta(days=1))
        untouched = await _emit_at(conn, second, timedelta(days=1))
        cutoff = await conn.fetchval("SELECT now() - interval '7 days'")
        deleted = await purge_events(conn, cutoff)
        remaining = await conn.fetch("SELECT sequence FROM events ORDER BY sequence")
        gaps: dict[str, Any] = {
            "before": await retention_gap(conn, first, old[0].sequence - 1),
            "inside": await retention_gap(conn, first, old[1].sequence),
            "at_end": await retention_gap(conn, first, old[-1].sequence),
            "other": await retention_gap(conn, second, 0),
        }
        again = await purge_events(conn, cutoff)
    assert deleted == 3
    assert again == 0
    assert [row["sequence"] for row in remaining] == [kept.sequence, untouched.sequence]
    assert gaps["before"] == RetentionGap(old[0].sequence - 1, kept.sequence)
    assert gaps["inside"] == RetentionGap(old[1].sequence, kept.sequence)
    assert gaps["at_end"] is None
    assert gaps["other"] is None


async def test_a_gap_with_nothing_retained_points_past_the_purged_range(
    pool: asyncpg.Pool, marketplace: str
) -> None:
    async with pool.acquire() as conn:
        old = await _emit_at(conn, marketplace, timedelta(days=30))
        await purge_events(conn, await conn.fetchval("SELECT now() - interval '7 days'"))
        gap = await retention_gap(conn, marketplace, 0)
    assert gap == RetentionGap(requested_after=0, oldest_available=old.sequence + 1)


async def test_one_notification_per_marketplace_at_commit_and_none_on_rollback(
    pool: asyncpg.Pool, db_dsn: str
) -> None:
    received: list[str] = []

    def record(_conn: object, _pid: int, _channel: str, payload: object) -> None:
        received.append(str(payload))

    listener = await asyncpg.connect(db_dsn)
    try:
        await listener.add_listener("offerhub_events", record)
        async with pool.acquire() as writer:
            first, second = await create_marketplace(writer), await create_marketplace(writer)
            async with writer.transaction():
                for marketplace in (first, second, first):
                    await _emit(writer, marketplace)
                await asyncio.sleep(0.05)
                assert received == []  # nothing before commit
            await _wait_for(lambda: len(received) >= 2)
            rolled_back = writer.transaction()
            await rolled_back.start()
            await _emit(writer, first)
            await rolled_back.rollback()
            await asyncio.sleep(0.1)
        await listener.remove_listener("offerhub_events", record)
    finally:
        await listener.close()
    assert sorted(received) == sorted([first, second])


async def _wait_for(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.01)
