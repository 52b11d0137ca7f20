"""``offerhub reconcile``: exit 0 clean, 1 with breaks printed, 2 when it cannot run.

The sandbox runs as ``serve`` runs it (seed 0, on a loopback port, in a thread of its own), and
the command reaches it over real HTTP, as an operator's shell would.
"""

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import asyncpg
import pytest
import uvicorn

from api.cli_reconcile import run_reconcile
from api.settings import Settings
from common.ids import new_id
from providers.sandbox.app import Sandbox

pytestmark = pytest.mark.db


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served_sandbox() -> Iterator[tuple[Sandbox, int]]:
    sandbox = Sandbox(follow_wall_clock=True)
    port = _free_port()
    config = uvicorn.Config(sandbox.asgi_app(), host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the sandbox did not start"
        time.sleep(0.05)
    try:
        yield sandbox, port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def test_exit_status_follows_the_run(
    db_dsn: str,
    pool: asyncpg.Pool,
    served_sandbox: tuple[Sandbox, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox, port = served_sandbox
    market = new_id("mkt_")
    await pool.execute("INSERT INTO marketplaces (id, name) VALUES ($1, $1)", market)
    settings = Settings(database_url=db_dsn, sandbox_port=port, reconcile_interval_s=0)
    assert await asyncio.to_thread(run_reconcile, settings, market, {}) == 0
    clean = capsys.readouterr().out
    assert f"{market}  COMPLETED" in clean
    assert "discrepancies 0" in clean

    # 2 USDC reach the platform wallet that no ledger account explains.
    sandbox.chain.mint(sandbox.platform.public_key, 20_000_000)
    assert await asyncio.to_thread(run_reconcile, settings, market, {}) == 1
    broken = capsys.readouterr().out
    assert "discrepancies 1" in broken
    assert "PLATFORM_FEES   MISMATCH" in broken
    assert "difference -2.00" in broken


def test_it_refuses_when_it_cannot_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_reconcile(Settings(), None, {}) == 2
    assert "needs DATABASE_URL" in capsys.readouterr().err


async def test_unreachable_providers(db_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(database_url=db_dsn, sandbox_port=_free_port())
    assert await asyncio.to_thread(run_reconcile, settings, None, {}) == 2
    assert "providers unreachable" in capsys.readouterr().err
