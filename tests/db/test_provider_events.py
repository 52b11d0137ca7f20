"""Stored provider webhooks: the lease, the retry claim, the attempt limit and the backoff."""

import asyncio

import asyncpg
import pytest

from flows.provider_events import (
    MAX_ATTEMPTS,
    EventProcessor,
    EventStatus,
    IncomingEvent,
    Subject,
    retry_delay_s,
    store_event,
)
from flows.queries import provider_events as queries
from flows.transitions import Actor
from ledger.db import run_in_transaction

pytestmark = pytest.mark.db


def test_retry_delay_doubles_from_five_seconds_up_to_an_hour() -> None:
    delays = [retry_delay_s(attempts) for attempts in range(1, 12)]
    assert delays[:5] == [5.0, 10.0, 20.0, 40.0, 80.0]
    assert delays == sorted(delays)
    assert retry_delay_s(10_000) == 3600.0


async def _received(pool: asyncpg.Pool, event_id: str, *, lease_s: float) -> int:
    """A RECEIVED event naming no resource (as if its match had been lost)."""
    async with pool.acquire() as conn:
        event = await queries.insert_event(
            conn,
            provider="airtm",
            provider_event_id=event_id,
            type="payin.confirmed",
            body={"type": "payin.confirmed", "data": {}},
            sent_at=None,
            marketplace_id=None,
            resource_type=None,
            resource_id=None,
            status=EventStatus.RECEIVED,
            outcome=None,
            lease_s=lease_s,
        )
    assert event is not None
    return event.id


async def test_the_retry_claim_respects_leases_and_the_attempt_limit(pool: asyncpg.Pool) -> None:
    woken: list[int] = []
    processor = EventProcessor(pool, None, wake=lambda: woken.append(1))
    leased = await _received(pool, "msg_leased", lease_s=60)
    exhausted = await _received(pool, "msg_exhausted", lease_s=0)
    await pool.execute(
        "UPDATE provider_events SET attempts = $2 WHERE id = $1", exhausted, MAX_ATTEMPTS
    )
    assert await processor.run_due() == 0  # one leased to its request, one out of attempts

    await pool.execute("UPDATE provider_events SET next_attempt_at = now() WHERE id = $1", leased)
    assert await processor.run_due() == 1
    rows = {
        row["id"]: dict(row)
        for row in await pool.fetch("SELECT id, status, outcome, attempts FROM provider_events")
    }
    assert rows[leased] == {
        "id": leased,
        "status": "IGNORED",
        "outcome": "unmatched",
        "attempts": 1,
    }
    assert rows[exhausted]["status"] == "RECEIVED"
    assert woken == []
    # A finished event is never claimed again, not even by the request path.
    assert await processor.process(leased, actor=Actor(type="PROVIDER", id="airtm")) is None


async def test_concurrent_stores_insert_once(pool: asyncpg.Pool) -> None:
    incoming = IncomingEvent(
        provider="trustless_work",
        event_id="tw-race",
        type="escrow.funded",
        body={"event_id": "tw-race"},
        sent_at=None,
        subject=Subject(kind="escrow", provider_id="C" + "A" * 55),
    )

    async def store() -> bool:
        async def work(conn: asyncpg.Connection) -> bool:
            return (await store_event(conn, incoming)).duplicate

        return await run_in_transaction(pool, work)

    duplicates = await asyncio.gather(*(store() for _ in range(10)))
    assert sorted(duplicates) == [False] + [True] * 9
    assert await pool.fetchval("SELECT count(*) FROM provider_events") == 1
