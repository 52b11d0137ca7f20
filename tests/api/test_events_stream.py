"""``GET /events`` over real HTTP: replay, ordering, fan-out across processes, limits, filters.

httpx's ASGI transport buffers whole responses, so streams run against the app served by a real
uvicorn server in the test's event loop (:func:`serving`); the two-process test starts two
``offerhub serve`` subprocesses on the test database. Polling is set to a minute, so an event
arriving within seconds proves the LISTEN/NOTIFY path.
"""

import asyncio
import contextlib
import json
import os
import random
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar
from prometheus_client import REGISTRY

from api.api_keys import parse_key
from api.app import create_app
from api.event_hub import EventHub, StreamSlots
from api.settings import Settings
from common.ids import new_id
from common.times import format_time
from flows.event_stream import purge_events
from flows.events import Event, emit
from tests.api.support import MASTER_KEY, PUBLIC_CONFIG, Api, routes_for_tests, settings_for_tests
from tests.serving import free_port
from tests.serving import serving as served_at

pytestmark = pytest.mark.db

EVENTS = "/api/v1/events"


class Served:
    """The app behind a real HTTP server, with a client for it."""

    def __init__(self, app: Litestar, api: Api) -> None:
        self.app = app
        self.api = api

    @property
    def hub(self) -> EventHub:
        """The app's event hub."""
        hub: EventHub = self.app.state.event_hub
        return hub


@contextlib.asynccontextmanager
async def serving(dsn: str, **overrides: Any) -> AsyncIterator[Served]:
    """The app with test routes on a free port; lifespan run by uvicorn."""
    settings: Settings = settings_for_tests(**{"sse_poll_s": 60.0, **overrides})
    app = create_app(settings, dsn, public_config=PUBLIC_CONFIG, extra_routes=routes_for_tests())
    limits = httpx.Limits(max_connections=50)
    async with (
        served_at(app) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10, limits=limits) as client,
    ):
        yield Served(app, Api(client, dsn))


class Frame(dict[str, str]):
    """One SSE message: its fields (``id``, ``event``, ``data``, ``retry``, ``comment``)."""

    @property
    def envelope(self) -> dict[str, Any]:
        """The decoded ``data`` line."""
        return dict(json.loads(self["data"]))


class Reader:
    """Reads SSE messages from a streaming httpx response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def frame(self, timeout_s: float = 5.0) -> Frame:
        """The next message (a heartbeat is a message with only ``comment``)."""
        return await asyncio.wait_for(self._frame(), timeout_s)

    async def _frame(self) -> Frame:
        frame = Frame()
        async for line in self._lines:
            if line == "":
                if frame:
                    return frame
                continue
            name, _, value = line.partition(":")
            frame["comment" if name == "" else name] = value.removeprefix(" ")
        raise EOFError("the stream ended")

    async def events(self, count: int, timeout_s: float = 10.0) -> list[Frame]:
        """The next ``count`` event messages, skipping heartbeats, within ``timeout_s``."""
        return await asyncio.wait_for(self._events(count), timeout_s)

    async def _events(self, count: int) -> list[Frame]:
        found: list[Frame] = []
        while len(found) < count:
            frame = await self._frame()
            if "event" in frame:
                found.append(frame)
        return found


@contextlib.asynccontextmanager
async def stream(
    api: Api, key: str, params: dict[str, Any] | None = None, **headers: str
) -> AsyncIterator[Reader]:
    """An open stream; the ``retry`` line is already read."""
    request_headers = api.auth(key, Accept="text/event-stream", **headers)
    async with api.client.stream("GET", EVENTS, params=params, headers=request_headers) as answer:
        assert answer.status_code == 200, (await answer.aread()).decode()
        reader = Reader(answer)
        assert await reader.frame() == {"retry": "5000"}
        yield reader


async def _emit(
    pool: asyncpg.Pool | asyncpg.Connection, marketplace_id: str, **fields: Any
) -> Event:
    async def write(conn: asyncpg.Connection) -> Event:
        return await emit(
            conn,
            marketplace_id=marketplace_id,
            type=fields.get("type", "order.created"),
            resource_type=fields.get("resource_type", "order"),
            resource_id=fields.get("resource_id") or new_id("ord_"),
            data=fields.get("data", {"note": "x"}),
        )

    if isinstance(pool, asyncpg.Pool):
        async with pool.acquire() as conn:
            return await write(conn)
    return await write(pool)


async def _outbox(pool: asyncpg.Pool, marketplace_id: str) -> list[int]:
    rows = await pool.fetch(
        "SELECT sequence FROM events WHERE marketplace_id = $1 ORDER BY sequence", marketplace_id
    )
    return [int(row["sequence"]) for row in rows]


async def _settle(hub: EventHub, sequence: int) -> None:
    """Wait until the hub's stable bound covers ``sequence``."""
    for _ in range(500):
        if hub.stable_bound >= sequence:
            return
        hub.poke()
        await asyncio.sleep(0.01)
    raise AssertionError("the stable bound never reached the event")


# -- the wire --------------------------------------------------------------------------------------


async def test_a_live_stream_sends_new_events_as_the_envelope(
    db_dsn: str, pool: asyncpg.Pool
) -> None:
    async with serving(db_dsn) as served:
        marketplace_id, key = await served.api.tenant(["read"])
        before = await _emit(pool, marketplace_id)
        await _settle(served.hub, before.sequence)
        headers = served.api.auth(key, **{"X-Request-ID": "sse-1"})
        async with served.api.client.stream("GET", EVENTS, headers=headers) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            assert answer.headers["cache-control"] == "no-store"
            assert answer.headers["x-request-id"] == "sse-1"
            reader = Reader(answer)
            assert await reader.frame() == {"retry": "5000"}
            after = await _emit(pool, marketplace_id, data={"amount": "1.50", "n": 2})
            (frame,) = await reader.events(1)
    assert frame["id"] == str(after.sequence)  # the event from before connecting is not sent
    assert frame["event"] == "order.created"
    assert frame.envelope == {
        "id": after.id,
        "sequence": after.sequence,
        "type": "order.created",
        "occurred_at": format_time(after.occurred_at),
        "marketplace_id": marketplace_id,
        "resource_type": "order",
        "resource_id": after.resource_id,
        "data": {"amount": "1.50", "n": 2},
    }


async def test_a_heartbeat_comment_when_idle(db_dsn: str) -> None:
    async with serving(db_dsn, sse_heartbeat_s=0.2) as served:
        _, key = await served.api.tenant(["read"])
        async with stream(served.api, key) as reader:
            beats = [await reader.frame(2.0) for _ in range(2)]
    assert beats == [{"comment": "heartbeat"}, {"comment": "heartbeat"}]


# -- replay ----------------------------------------------------------------------------------------


async def _produce(pool: asyncpg.Pool, marketplace_id: str, count: int, writers: int) -> None:
    """``count`` events from concurrent writers whose commits overtake each other."""

    async def writer(share: int) -> None:
        for _ in range(share):
            async with pool.acquire() as conn, conn.transaction():
                await _emit(conn, marketplace_id)
                await asyncio.sleep(random.uniform(0, 0.01))

    await asyncio.gather(*(writer(count // writers) for _ in range(writers)))


async def test_replay_after_a_disconnect_loses_and_repeats_nothing(
    db_dsn: str, pool: asyncpg.Pool
) -> None:
    async with serving(db_dsn) as served:
        marketplace_id, key = await served.api.tenant(["read"])
        producing = asyncio.create_task(_produce(pool, marketplace_id, 120, writers=4))
        async with stream(served.api, key, {"since": 0}) as reader:
            first = await reader.events(40)
        # Disconnected mid-stream, while the writers go on; resume from the last id seen.
        await asyncio.sleep(0.05)
        last_id = first[-1]["id"]
        async with stream(served.api, key, {"since": 1}, **{"Last-Event-ID": last_id}) as again:
            await producing
            rest = await again.events(120 - len(first))
    received = [int(frame["id"]) for frame in [*first, *rest]]
    assert received == await _outbox(pool, marketplace_id)
    assert len(set(received)) == 120
    assert [frame.envelope["sequence"] for frame in rest] == received[len(first) :]


@pytest.mark.parametrize("ending", ["COMMIT", "ROLLBACK"])
async def test_an_open_transaction_holding_a_lower_sequence_is_not_overtaken(
    db_dsn: str, pool: asyncpg.Pool, ending: str
) -> None:
    async with serving(db_dsn, sse_heartbeat_s=0.2) as served:
        marketplace_id, key = await served.api.tenant(["read"])
        async with pool.acquire() as slow, stream(served.api, key, {"since": 0}) as reader:
            await slow.execute("BEGIN")
            lower = await _emit(slow, marketplace_id)
            higher = await _emit(pool, marketplace_id)
            held = [await reader.frame(2.0) for _ in range(3)]
            await slow.execute(ending)
            expected = [lower, higher] if ending == "COMMIT" else [higher]
            delivered = await reader.events(len(expected))
    assert held == [{"comment": "heartbeat"}] * 3  # nothing while the lower one is in flight
    assert [frame["id"] for frame in delivered] == [str(event.sequence) for event in expected]


async def test_a_resume_point_older_than_retention_says_replay_truncated(
    db_dsn: str, pool: asyncpg.Pool
) -> None:
    async with serving(db_dsn) as served:
        marketplace_id, key = await served.api.tenant(["read"])
        old = await pool.fetchval(
            "INSERT INTO events (id, marketplace_id, type, resource_type, resource_id, data,"
            " occurred_at) VALUES ($1, $2, 'order.created', 'order', $3, '{}',"
            " now() - interval '30 days') RETURNING sequence",
            new_id("evt_"),
            marketplace_id,
            new_id("ord_"),
        )
        kept = await _emit(pool, marketplace_id)
        async with pool.acquire() as conn:
            assert await purge_events(conn, kept.occurred_at - timedelta(days=7)) == 1
        async with stream(served.api, key, **{"Last-Event-ID": "0"}) as reader:
            notice = await reader.frame()
            (replayed,) = await reader.events(1)
        async with stream(served.api, key, {"since": old}) as reader:
            (not_truncated,) = await reader.events(1)
    assert notice == {
        "event": "replay_truncated",
        "data": json.dumps({"requested_after": 0, "oldest_available": kept.sequence}).replace(
            " ", ""
        ),
    }
    assert replayed["id"] == str(kept.sequence)
    assert not_truncated["id"] == str(kept.sequence)


# -- tenancy, filters, input -----------------------------------------------------------------------


async def test_filters_and_tenancy_pick_exactly_the_matching_events(
    db_dsn: str, pool: asyncpg.Pool
) -> None:
    async with serving(db_dsn) as served:
        marketplace_id, key = await served.api.tenant(["read"])
        other_id, _ = await served.api.tenant(["read"])
        watched = new_id("usr_")
        plan = [
            (marketplace_id, "order.created", "order", None, True),
            (marketplace_id, "order.canceled", "order", None, True),
            (marketplace_id, "escrow.funded", "escrow", None, False),
            (marketplace_id, "balance.credited", "balance", watched, True),
            (marketplace_id, "user.created", "user", None, False),
            (marketplace_id, "user.created", "user", watched, True),
            (other_id, "order.created", "order", None, False),
        ]
        params = {"since": 0, "types": "order.*,user.created,balance.credited"}
        params["resources"] = f"order,{watched}"
        sent = []
        for tenant, event_type, resource_type, resource_id, wanted in plan:
            event = await _emit(
                pool, tenant, type=event_type, resource_type=resource_type, resource_id=resource_id
            )
            sent.append((event, wanted))
        expected = [str(event.sequence) for event, wanted in sent if wanted]
        async with stream(served.api, key, params) as reader:
            frames = await reader.events(len(expected))
            sentinel = await _emit(pool, marketplace_id, type="order.closed")
            (last,) = await reader.events(1)
    assert [frame["id"] for frame in frames] == expected
    assert last["id"] == str(sentinel.sequence)


async def test_streams_in_step_share_reads_but_keep_their_own_filters(
    db_dsn: str, pool: asyncpg.Pool
) -> None:
    async with serving(db_dsn) as served:
        marketplace_id, key = await served.api.tenant(["read"])
        other_key = await served.api.new_key(marketplace_id, ["read"])
        async with contextlib.AsyncExitStack() as stack:
            everything = [
                await stack.enter_async_context(stream(served.api, key, {"since": 0}))
                for _ in range(3)
            ]
            closed_only = await stack.enter_async_context(
                stream(served.api, other_key, {"since": 0, "types": "order.closed"})
            )
            sent = [
                await _emit(pool, marketplace_id, type=event_type)
                for event_type in ("order.created", "order.closed", "order.created")
            ]
            seen = [await reader.events(3) for reader in everything]
            (closed,) = await closed_only.events(1)
    expected = [str(event.sequence) for event in sent]
    assert [[frame["id"] for frame in frames] for frames in seen] == [expected] * 3
    assert closed["id"] == str(sent[1].sequence)


@pytest.mark.parametrize(
    ("params", "headers", "field"),
    [
        ({"types": "order.nope"}, {}, "query.types"),
        ({"types": "order.*,"}, {}, "query.types"),
        ({"types": "nothing.*"}, {}, "query.types"),
        ({"resources": "orders"}, {}, "query.resources"),
        ({"since": "-1"}, {}, "query.since"),
        ({"since": "abc"}, {}, "query.since"),
        ({"colour": "red"}, {}, "query.colour"),
        ({}, {"Last-Event-ID": "12a"}, "header.Last-Event-ID"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(
    api: Api, params: dict[str, str], headers: dict[str, str], field: str
) -> None:
    _, key = await api.tenant(["read"])
    answer = await api.client.get(EVENTS, params=params, headers=api.auth(key, **headers))
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [item["field"] for item in error["details"]["fields"]] == [field]


async def test_the_stream_needs_the_read_scope_of_a_marketplace_key(api: Api) -> None:
    _, writer = await api.tenant(["write"])
    assert (await api.get(EVENTS, writer)).json()["error"]["code"] == "INSUFFICIENT_SCOPE"
    assert (await api.get(EVENTS, MASTER_KEY)).status_code == 403
    assert (await api.client.get(EVENTS)).status_code == 401


# -- limits and connections ------------------------------------------------------------------------


async def test_a_sixth_stream_of_one_key_is_rate_limited_until_one_closes(db_dsn: str) -> None:
    async with serving(db_dsn) as served, contextlib.AsyncExitStack() as streams:
        api = served.api
        marketplace_id, key = await api.tenant(["read"])
        for _ in range(5):
            await streams.enter_async_context(stream(api, key))
        refused = await api.get(EVENTS, key)
        other_key = await api.new_key(marketplace_id, ["read"])
        async with stream(api, other_key):
            pass  # slots are per key
        await streams.aclose()  # every stream disconnects; their slots come back
        async with stream(api, key):
            pass
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "5"
    assert refused.headers["x-ratelimit-limit"] == "5"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.json()["error"] == {
        "code": "RATE_LIMITED",
        "message": refused.json()["error"]["message"],
        "details": {"limit": 5, "window_seconds": 5, "retry_after": 5},
    }


async def test_disconnected_streams_give_their_slots_back(db_dsn: str) -> None:
    async with serving(db_dsn, sse_max_streams_per_key=1) as served:
        _, key = await served.api.tenant(["read"])
        parsed = parse_key(key)
        assert parsed is not None
        slots: StreamSlots = served.app.state.stream_slots
        before = _open_streams_gauge()
        for _ in range(3):  # each would be refused if the previous one kept its slot
            async with stream(served.api, key):
                assert slots.held(parsed.key_id) == 1
                assert _open_streams_gauge() == before + 1
            for _ in range(200):
                if slots.held(parsed.key_id) == 0:
                    break
                await asyncio.sleep(0.01)
            assert slots.held(parsed.key_id) == 0
            assert _open_streams_gauge() == before


def _open_streams_gauge() -> float:
    """``offerhub_sse_connections`` of this process (the served app runs in it)."""
    value = REGISTRY.get_sample_value("offerhub_sse_connections")
    assert value is not None
    return value


async def test_a_dropped_listener_reconnects_and_nothing_is_lost(
    db_dsn: str, pool: asyncpg.Pool
) -> None:
    async with serving(db_dsn) as served:
        marketplace_id, key = await served.api.tenant(["read"])
        async with stream(served.api, key, {"since": 0}) as reader:
            await served.hub.listening()
            killed = await pool.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
            )
            event = await _emit(pool, marketplace_id)
            (frame,) = await reader.events(1)
    assert killed == 1
    assert frame["id"] == str(event.sequence)


# -- two server processes --------------------------------------------------------------------------

_KEY = re.compile(r"API key: (ohk_\S+)")


def _start(dsn: str, data_dir: Path) -> tuple[subprocess.Popen[str], int, str | None]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "OFFERHUB_RATE_LIMIT_PER_S": "0",
        "OFFERHUB_SSE_POLL_S": "60",
    }
    command = [sys.executable, "-m", "api", "serve", "--data-dir", str(data_dir)]
    command += ["--port", str(port), "--sandbox-port", str(free_port())]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    key = None
    for line in process.stdout:
        found = _KEY.search(line)
        key = found.group(1) if found else key
        if "listening on" in line:
            return process, port, key
    raise AssertionError(f"offerhub serve did not start (exit {process.wait()})")


async def _ready(client: httpx.AsyncClient) -> None:
    for _ in range(300):
        with contextlib.suppress(httpx.TransportError):
            if (await client.get("/api/v1/health/ready")).status_code == 200:
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the server never became ready")


@pytest.mark.slow
async def test_an_event_made_through_one_process_reaches_a_stream_of_the_other(
    db_dsn: str, tmp_path: Path
) -> None:
    first, first_port, key = await asyncio.to_thread(_start, db_dsn, tmp_path / "one")
    processes = [first]
    try:
        assert key is not None  # the first process bootstraps the marketplace
        second, second_port, _ = await asyncio.to_thread(_start, db_dsn, tmp_path / "two")
        processes.append(second)
        headers = {"Authorization": f"Bearer {key}"}
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{first_port}", headers=headers) as one,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{second_port}", headers=headers) as two,
        ):
            await asyncio.gather(_ready(one), _ready(two))
            async with two.stream("GET", EVENTS, params={"types": "user.created"}) as answer:
                assert answer.status_code == 200
                reader = Reader(answer)
                assert await reader.frame() == {"retry": "5000"}
                created = await one.post(
                    "/api/v1/users",
                    json={"external_user_id": "across"},
                    headers={"Idempotency-Key": "across-1"},
                )
                assert created.status_code == 201, created.text
                (frame,) = await reader.events(1)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:  # reads what is left of its output and closes the pipe
                await asyncio.to_thread(process.communicate, None, 30)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.communicate)
    assert frame["event"] == "user.created"
    assert frame.envelope["resource_id"] == created.json()["id"]
