"""Idempotency-Key over HTTP (api.md 1.8): replays, conflicts, leases, atomicity, retention."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from api.idempotency import purge_expired, purge_periodically
from ledger.db import create_pool
from tests.api.support import MASTER_KEY, Api, Gate, routes_for_tests, running_api

pytestmark = pytest.mark.db

EFFECTS = "/api/v1/test/effects"


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(db_dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def effects(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT count(*) FROM events WHERE type = 'test.effect'"))


async def test_a_retry_replays_the_stored_reply_and_runs_nothing(
    api: Api, db: asyncpg.Connection
) -> None:
    _, key = await api.tenant()
    first = await api.post(EFFECTS, key, {"note": "a", "amount": "1.5"}, idempotency_key="k-1")
    assert first.status_code == 201
    assert "idempotency-replayed" not in first.headers
    replay = await api.client.post(
        EFFECTS,
        content=b'{ "amount" : "1.5",\n "note": "a"}',
        headers=api.auth(key, **{"Idempotency-Key": "k-1", "Content-Type": "application/json"}),
    )
    assert replay.status_code == 201
    assert replay.content == first.content
    assert replay.headers["location"] == first.headers["location"]
    assert replay.headers["idempotency-replayed"] == "true"
    assert replay.headers["x-request-id"] != first.headers["x-request-id"]
    assert await effects(db) == 1


async def test_the_same_key_for_another_request_is_refused(
    api: Api, db: asyncpg.Connection
) -> None:
    _, key = await api.tenant()
    assert (await api.post(EFFECTS, key, {"note": "a"}, idempotency_key="k")).status_code == 201
    other_body = await api.post(EFFECTS, key, {"note": "b"}, idempotency_key="k")
    other_path = await api.post("/api/v1/test/no-body", key, None, idempotency_key="k")
    for response in (other_body, other_path):
        assert response.status_code == 409
        assert response.json()["error"] == {
            "code": "IDEMPOTENCY_KEY_REUSED",
            "message": "This Idempotency-Key was used with a different request.",
            "details": {"idempotency_key": "k"},
        }
    assert await effects(db) == 1


async def test_keys_are_per_marketplace_and_master_has_its_own_namespace(
    api: Api, db: asyncpg.Connection
) -> None:
    _, key_a = await api.tenant()
    _, key_b = await api.tenant()
    assert (
        await api.post(EFFECTS, key_a, {"note": "a"}, idempotency_key="shared")
    ).status_code == 201
    assert (
        await api.post(EFFECTS, key_b, {"note": "a"}, idempotency_key="shared")
    ).status_code == 201
    master = await api.post("/api/v1/marketplaces", MASTER_KEY, {"name": "m"}, "shared")
    assert master.status_code == 201
    assert await effects(db) == 2


async def test_the_key_header_is_required_and_well_formed(api: Api) -> None:
    _, key = await api.tenant()
    missing = await api.client.post(EFFECTS, json={"note": "a"}, headers=api.auth(key))
    long = await api.post(EFFECTS, key, {"note": "a"}, idempotency_key="x" * 256)
    assert missing.json()["error"]["details"]["fields"] == [
        {"field": "header.Idempotency-Key", "message": "required"}
    ]
    assert long.json()["error"]["details"]["fields"][0]["field"] == "header.Idempotency-Key"


async def test_a_key_still_executing_is_409_in_progress(
    db_dsn: str, db: asyncpg.Connection
) -> None:
    gate = Gate()
    async with running_api(db_dsn, extra_routes=routes_for_tests(gate)) as api:
        _, key = await api.tenant()
        body = {"note": "slow", "mode": "slow"}
        first = asyncio.create_task(api.post(EFFECTS, key, body, idempotency_key="busy"))
        await asyncio.wait_for(gate.entered.wait(), 10)
        second = await api.post(EFFECTS, key, body, idempotency_key="busy")
        assert second.status_code == 409
        assert second.json()["error"]["code"] == "IDEMPOTENCY_KEY_IN_PROGRESS"
        assert second.headers["retry-after"] == "1"
        gate.release.set()
        done = await first
        assert done.status_code == 201
        third = await api.post(EFFECTS, key, body, idempotency_key="busy")
        assert third.content == done.content
    assert await effects(db) == 1


async def test_twenty_concurrent_requests_with_one_key_have_one_effect(
    api: Api, db: asyncpg.Connection
) -> None:
    _, key = await api.tenant()
    body = {"note": "once", "amount": "10"}
    responses = await asyncio.gather(
        *(api.post(EFFECTS, key, body, idempotency_key="race") for _ in range(20))
    )
    statuses = sorted(response.status_code for response in responses)
    assert set(statuses) <= {201, 409}
    assert statuses.count(201) >= 1
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"]["code"] == "IDEMPOTENCY_KEY_IN_PROGRESS"
    retried = [
        await api.post(EFFECTS, key, body, idempotency_key="race")
        if response.status_code == 409
        else response
        for response in responses
    ]
    assert {response.status_code for response in retried} == {201}
    assert len({response.content for response in retried}) == 1
    assert len({response.headers["location"] for response in retried}) == 1
    assert sum("idempotency-replayed" not in response.headers for response in retried) == 1
    assert await effects(db) == 1


async def test_a_not_found_decided_by_the_work_is_stored_and_its_effect_rolled_back(
    api: Api, db: asyncpg.Connection
) -> None:
    _, key = await api.tenant()
    body = {"note": "x", "mode": "missing"}
    first = await api.post(EFFECTS, key, body, idempotency_key="nf")
    assert first.status_code == 404
    assert first.json()["error"]["code"] == "ORDER_NOT_FOUND"
    replay = await api.post(EFFECTS, key, body, idempotency_key="nf")
    assert replay.status_code == 404
    assert replay.content == first.content
    assert replay.headers["idempotency-replayed"] == "true"
    assert await effects(db) == 0
    status = await db.fetchval("SELECT response_status FROM idempotency_keys WHERE key = 'nf'")
    assert status == 404


@pytest.mark.parametrize(("mode", "status"), [("crash", 500), ("bad", 400)])
async def test_failures_release_the_key_and_leave_no_effect(
    api: Api, db: asyncpg.Connection, mode: str, status: int
) -> None:
    _, key = await api.tenant()
    body = {"note": "x", "mode": mode}
    first = await api.post(EFFECTS, key, body, idempotency_key="rel")
    assert first.status_code == status
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = 'rel'") == 0
    again = await api.post(EFFECTS, key, body, idempotency_key="rel")
    assert again.status_code == status
    assert "idempotency-replayed" not in again.headers
    assert await effects(db) == 0


async def test_an_expired_lease_is_taken_over_and_a_live_one_is_not(
    api: Api, db: asyncpg.Connection
) -> None:
    marketplace_id, key = await api.tenant()
    body = {"note": "lost"}
    assert (await api.post(EFFECTS, key, body, idempotency_key="model")).status_code == 201
    fingerprint = await db.fetchval("SELECT fingerprint FROM idempotency_keys WHERE key = 'model'")
    # A request that died after claiming its key: its effect never committed.
    for name, lease in (("dead", timedelta(seconds=-1)), ("alive", timedelta(minutes=1))):
        await db.execute(
            "INSERT INTO idempotency_keys (namespace, key, fingerprint, claim, locked_until,"
            " expires_at) VALUES ($1, $2, $3, 'gone', now() + $4, now() + '1 day')",
            marketplace_id,
            name,
            fingerprint,
            lease,
        )
    taken = await api.post(EFFECTS, key, body, idempotency_key="dead")
    assert taken.status_code == 201
    assert "idempotency-replayed" not in taken.headers
    alive = await api.post(EFFECTS, key, body, idempotency_key="alive")
    assert alive.status_code == 409
    assert alive.json()["error"]["code"] == "IDEMPOTENCY_KEY_IN_PROGRESS"
    assert await effects(db) == 2


async def test_a_long_running_action_stores_the_reply_of_finish(
    api: Api, db: asyncpg.Connection
) -> None:
    _, key = await api.tenant()
    body = {"note": "op", "mode": "finish"}
    first = await api.post(EFFECTS, key, body, idempotency_key="op")
    assert first.status_code == 202
    assert first.headers["location"].startswith("/api/v1/test/evt_")
    replay = await api.post(EFFECTS, key, body, idempotency_key="op")
    assert replay.status_code == 202
    assert replay.content == first.content
    assert replay.headers["location"] == first.headers["location"]
    assert await effects(db) == 1


async def test_a_lost_response_after_the_effect_is_recovered_from_current_state(
    api: Api, db: asyncpg.Connection
) -> None:
    marketplace_id, key = await api.tenant()
    body = {"note": "op", "mode": "finish"}
    assert (await api.post(EFFECTS, key, body, idempotency_key="model")).status_code == 202
    fingerprint = await db.fetchval("SELECT fingerprint FROM idempotency_keys WHERE key = 'model'")
    # The original request committed its effect, then died while awaiting the operation.
    await db.execute(
        "INSERT INTO idempotency_keys (namespace, key, fingerprint, claim, locked_until,"
        " effect_committed, expires_at)"
        " VALUES ($1, 'died', $2, 'gone', now() - interval '1 second', true, now() + '1 day')",
        marketplace_id,
        fingerprint,
    )
    recovered = await api.post(EFFECTS, key, body, idempotency_key="died")
    assert recovered.status_code == 202
    assert recovered.json()["event_id"] == "recovered"
    replay = await api.post(EFFECTS, key, body, idempotency_key="died")
    assert replay.content == recovered.content
    assert await effects(db) == 1


async def test_expired_records_are_purged_and_the_key_is_new_again(
    api: Api, db: asyncpg.Connection
) -> None:
    _, key = await api.tenant()
    assert (await api.post(EFFECTS, key, {"note": "a"}, idempotency_key="old")).status_code == 201
    await db.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    kept = await db.fetchval("SELECT count(*) FROM idempotency_keys")
    assert await purge_expired(db) == kept
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys") == 0
    again = await api.post(EFFECTS, key, {"note": "b"}, idempotency_key="old")
    assert again.status_code == 201
    assert await effects(db) == 2


async def test_the_purge_task_deletes_expired_records(api: Api, db: asyncpg.Connection) -> None:
    _, key = await api.tenant()
    await api.post(EFFECTS, key, {"note": "a"}, idempotency_key="soon-gone")
    await db.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    pool = await create_pool(api.dsn, min_size=1, max_size=1)
    task = asyncio.create_task(purge_periodically(pool, 0.01))
    try:
        for _ in range(200):
            if await db.fetchval("SELECT count(*) FROM idempotency_keys") == 0:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pool.close()
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys") == 0


async def test_retention_is_seven_days_by_default(api: Api, db: asyncpg.Connection) -> None:
    _, key = await api.tenant()
    await api.post(EFFECTS, key, {"note": "a"}, idempotency_key=str(uuid.uuid4()))
    retention = await db.fetchval(
        "SELECT max(expires_at - created_at) FROM idempotency_keys WHERE status = 'DONE'"
    )
    assert retention.days == 7
