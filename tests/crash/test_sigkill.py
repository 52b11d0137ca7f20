"""SIGKILL ``offerhub serve`` under a load of order lifecycles, restart it, then audit everything.

The sandbox chain lives in this process and the database on the test server, so both outlive
every kill; only the server process dies. Kill moments come from a seeded RNG, inside windows
where the clients are busy. Afterwards: every acknowledged request is reflected exactly once,
every replay answers the same without re-applying, every operation ended, the books balance and a
reconciliation run finds nothing.
"""

import asyncio
import contextlib
import random
from collections import Counter
from pathlib import Path
from typing import Final

import asyncpg
import httpx
import pytest

from providers.sandbox.app import Sandbox
from tests.crash.checks import (
    operations_end,
    reconciliation_is_clean,
    replays_change_nothing,
    state_matches_model,
)
from tests.crash.client import Journal, ResilientClient
from tests.crash.harness import ServerProcess, provider_environment, serving_sandbox
from tests.crash.load import LoadContext, Model, run_client

pytestmark = [pytest.mark.db, pytest.mark.slow]

SEED: Final = 20240607
CLIENTS: Final = 6
KILLS: Final = 4
# Seconds an incarnation lives under load before its SIGKILL (drawn from the seeded RNG).
KILL_WINDOW_S: Final = (1.5, 5.0)
# The last incarnation keeps serving the load this long before the clients are told to stop.
SETTLE_S: Final = 4.0
OPERATION_LEASE_S: Final = 5
# Operations a kill left RUNNING end within this long after the restart (their claims expire
# after OPERATION_LEASE_S, then the new incarnation's runner resumes them).
RESUME_BOUND_S: Final = OPERATION_LEASE_S + 25.0


def _server_environment(db_dsn: str, sandbox: Sandbox, sandbox_url: str) -> dict[str, str]:
    return {
        **provider_environment(sandbox, sandbox_url),
        "DATABASE_URL": db_dsn,
        "OFFERHUB_RATE_LIMIT_PER_S": "0",
        # The test books deposits itself (mint + adjustment): no monitor, no scheduled runs.
        "OFFERHUB_DEPOSIT_POLL_S": "0",
        "OFFERHUB_RECONCILE_INTERVAL_S": "0",
        # A dead incarnation's claims (request keys, operation steps) expire within seconds.
        "OFFERHUB_IDEMPOTENCY_LEASE_S": "2",
        "OFFERHUB_OPERATION_LEASE_S": str(OPERATION_LEASE_S),
        "OFFERHUB_OPERATION_WAIT_S": "2",
    }


class Kills:
    """What the kills interrupted, and how long the interrupted operations took to end."""

    def __init__(self) -> None:
        self.interrupted: set[str] = set()
        self.resumed_in_s: list[float] = []


async def _interrupted_end(pool: asyncpg.Pool, ids: list[str], kills: Kills) -> None:
    """Wait until the operations a kill left RUNNING have ended; record how long it took."""
    loop = asyncio.get_running_loop()
    restarted = loop.time()
    query = "SELECT count(*) FROM operations WHERE id = ANY($1::text[]) AND status = 'RUNNING'"
    while await pool.fetchval(query, ids):
        assert loop.time() - restarted < RESUME_BOUND_S, f"still running after a restart: {ids}"
        await asyncio.sleep(0.1)
    kills.resumed_in_s.append(loop.time() - restarted)


async def _kill_repeatedly(
    server: ServerProcess, pool: asyncpg.Pool, rng: random.Random, stop: asyncio.Event
) -> Kills:
    """Kill and restart the server ``KILLS`` times, then let the load settle and stop it."""
    kills = Kills()
    async with asyncio.TaskGroup() as watchers:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(*KILL_WINDOW_S))
            await server.kill()
            rows = await pool.fetch("SELECT id FROM operations WHERE status = 'RUNNING'")
            ids = [row["id"] for row in rows]
            kills.interrupted.update(ids)
            await server.start()
            watchers.create_task(_interrupted_end(pool, ids, kills))
        await asyncio.sleep(SETTLE_S)
        stop.set()
    return kills


async def _audit(
    pool: asyncpg.Pool,
    api: ResilientClient,
    sandbox: Sandbox,
    model: Model,
    journal: Journal,
    server: ServerProcess,
    kills: Kills,
) -> None:
    """Everything acknowledged is there once; replays re-apply nothing; the books reconcile."""
    assert server.kills >= 3
    # The kills caught durable operations mid-way, and each was resumed to its end (bounded).
    assert kills.interrupted, "no kill caught an operation running"
    assert len(kills.resumed_in_s) == server.kills
    # Kills landed on requests in flight, and the retries with the same key completed them.
    assert journal.lost_then_answered, "no kill caught a request in flight"
    assert journal.server_errors == []
    await state_matches_model(pool, api, sandbox, model)
    await replays_change_nothing(pool, api, journal)
    await state_matches_model(pool, api, sandbox, model)
    await reconciliation_is_clean(api)


def _kinds(journal: Journal) -> str:
    """The lost-then-answered POSTs by action (``orders/reserve`` and the like)."""
    kinds = Counter(
        "/".join(part for part in answer.path.split("/") if not part.startswith(("usr_", "ord_")))
        for answer in journal.lost_then_answered
    )
    return ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))


async def test_sigkill_under_load_loses_nothing_and_doubles_nothing(
    db_dsn: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    rng = random.Random(SEED)  # reproducible kill moments
    sandbox = Sandbox(seed=SEED, follow_wall_clock=True)
    async with serving_sandbox(sandbox) as sandbox_url:
        environ = _server_environment(db_dsn, sandbox, sandbox_url)
        server = ServerProcess(environ, tmp_path / "data", tmp_path / "serve.log")
        await server.start()
        try:
            journal = Journal()
            limits = httpx.Limits(max_connections=CLIENTS * 2)
            async with httpx.AsyncClient(
                base_url=server.base_url, timeout=60.0, limits=limits
            ) as http:
                api = ResilientClient(http, server.bootstrap_key(), journal)
                model = Model()
                ctx = LoadContext(api, sandbox, model, asyncio.Event(), SEED)
                loop = asyncio.get_running_loop()
                started = loop.time()
                async with asyncio.TaskGroup() as group:
                    killing = group.create_task(_kill_repeatedly(server, pool, rng, ctx.stop))
                    for client in range(CLIENTS):
                        group.create_task(run_client(ctx, client))
                kills = killing.result()
                load_s = loop.time() - started
                settle_s = await operations_end(pool)
                await _audit(pool, api, sandbox, model, journal, server, kills)
                print(
                    f"\ncrash test: load {load_s:.1f}s, kills {server.kills},"
                    f" lifecycles {len(model.lifecycles)}, acknowledged"
                    f" {len(journal.acknowledged)}, answers lost then retried"
                    f" {len(journal.lost_then_answered)} ({_kinds(journal)}),"
                    f" operations interrupted {len(kills.interrupted)}, resumed within"
                    f" {max(kills.resumed_in_s):.1f}s of a restart, all ended {settle_s:.1f}s"
                    " after the load"
                )
        finally:
            if server.running:
                with contextlib.suppress(Exception):
                    await server.stop()
