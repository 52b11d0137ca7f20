"""The app and the sandbox behind real sockets, in a thread of their own, for a sync test.

:class:`LiveServer` runs one asyncio loop in a background thread with two uvicorn servers on
free loopback ports: the sandbox (Horizon, Trustless Work, Airtm and the control routes under
``/_sandbox``) and the API, built as ``offerhub serve`` builds it (real clients to the sandbox
over HTTP, the operation runner, the deposit monitor, Airtm webhooks pumped to
``/api/v1/webhooks/airtm``). The test drives both over HTTP with a sync client; what no route
offers (booking the treasury's USDC, which an operator does) runs on the server's loop through
:meth:`LiveServer.call`, so the sandbox's state is only ever touched from that loop.
"""

import asyncio
import concurrent.futures
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final, TypeVar

import asyncpg
import httpx
import msgspec
import uvicorn

from api.app import create_app
from api.serve import sandbox_config
from common.ids import new_id
from ledger import Transfer, TransferResult, create_transfers, open_account, system_account
from ledger.db import create_pool, run_in_transaction
from providers.sandbox.app import Sandbox
from tests.api.support import sandbox_runtime, settings_for_tests

__all__ = ["AIRTM_EMAILS", "LiveServer"]

T = TypeVar("T")

# Airtm accounts the sandbox knows (active, verified): users link one of these.
AIRTM_EMAILS: Final = tuple(f"payee-{n}@airtm.test" for n in range(200))
# The operator's float at Airtm, from which payouts are paid.
_AIRTM_FLOAT: Final = 1_000_000 * 10_000_000
_START_TIMEOUT_S: Final = 30.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signal handling to pytest (and a thread may not install handlers)."""
        yield


def _uvicorn(app: Any, port: int) -> _Server:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    return _Server(config)


class LiveServer:
    """The sandbox and the app served on loopback ports by a background thread."""

    def __init__(self, dsn: str, *, wait_s: float = 1.0, deposit_poll_s: float = 0.3) -> None:
        self.dsn = dsn
        self.wait_s = wait_s
        self.deposit_poll_s = deposit_poll_s
        self.api_port = _free_port()
        self.sandbox_port = _free_port()
        self.sandbox = Sandbox(seed=11, follow_wall_clock=True)
        for email in AIRTM_EMAILS:
            self.sandbox.airtm.add_user(email)
        self.sandbox.airtm.fund(_AIRTM_FLOAT)
        # A Stellar account outside the installation that crypto withdrawals pay to.
        self.destination = self.sandbox.chain.activate().public_key
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._pool: asyncpg.Pool | None = None
        self._thread = threading.Thread(target=self._run, name="model-server", daemon=True)

    @property
    def api_url(self) -> str:
        """The API's base URL (``/api/v1`` included)."""
        return f"http://127.0.0.1:{self.api_port}/api/v1"

    @property
    def control_url(self) -> str:
        """The sandbox's control routes."""
        return f"http://127.0.0.1:{self.sandbox_port}/_sandbox/control"

    @property
    def platform_address(self) -> str:
        """The platform wallet: fees, dispute resolver and treasury of every marketplace."""
        return self.sandbox.platform.public_key

    def start(self) -> None:
        """Start the thread; return once both servers accept connections."""
        self._thread.start()
        if not self._started.wait(_START_TIMEOUT_S):
            raise TimeoutError("the model server did not start")
        if self._error is not None:
            raise RuntimeError("the model server failed to start") from self._error

    def stop(self) -> None:
        """Stop both servers and the thread (the app's lifespan ends its background work)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=_START_TIMEOUT_S)
        if self._error is not None:
            raise RuntimeError("the model server failed") from self._error

    def call(self, work: Callable[[], Awaitable[T]], timeout_s: float = 30.0) -> T:
        """Run ``work()`` on the server's loop and return its result."""
        assert self._loop is not None

        async def run() -> T:
            return await work()

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return future.result(timeout_s)

    def fund_treasury(self, marketplace_id: str, amount_minor: int) -> None:
        """USDC reaches the treasury (platform) wallet and is booked to the marketplace.

        What an operator does before top-ups can be delivered on chain; no route offers it, so
        the posting ``external:stellar -> treasury:stellar`` is made with the ledger API.
        """

        async def book() -> None:
            assert self._pool is not None
            self.sandbox.chain.mint(self.platform_address, amount_minor)

            async def work(conn: asyncpg.Connection) -> None:
                external = await open_account(
                    conn, marketplace_id, "USD", system_account("external:stellar")
                )
                treasury = await open_account(
                    conn, marketplace_id, "USD", system_account("treasury:stellar")
                )
                transfer = Transfer(
                    id=new_id("trf_"),
                    marketplace_id=marketplace_id,
                    code="treasury_fund",
                    debit_account_id=external.id,
                    credit_account_id=treasury.id,
                    amount=amount_minor,
                    asset="USD",
                )
                [outcome] = await create_transfers(conn, [transfer])
                assert outcome.result is TransferResult.OK, outcome

            await run_in_transaction(self._pool, work)

        self.call(book)

    def payout_status(self, payout_id: str) -> str:
        """The status of a payout at the sandbox's Airtm (as Airtm's own API would show it)."""

        async def read() -> str:
            return str(self.sandbox.airtm.payout(payout_id).status.value)

        return self.call(read)

    def webhook_trace(self, last: int = 8) -> str:
        """The pump's state and its last Airtm webhook attempts, for a failure message."""

        async def read() -> str:
            pump = self.sandbox._pump
            sender = self.sandbox._webhooks
            attempts = [] if sender is None else sender.attempts[-last:]
            waiting = [] if sender is None else sender.undelivered()
            alive = pump is not None and not pump.done()
            lines = [f"pump alive: {alive}; undelivered: {[m.type for m in waiting]}"]
            if pump is not None and pump.done() and not pump.cancelled():
                lines.append(f"pump died: {pump.exception()!r}")
            lines += [repr(attempt) for attempt in attempts]
            return "\n".join(lines)

        return self.call(read)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # reported by start() / stop() in the test's thread
            self._error = error
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        sandbox_server = _uvicorn(self.sandbox.asgi_app(), self.sandbox_port)
        sandbox_task = asyncio.create_task(sandbox_server.serve())
        await self._until_started(sandbox_server, sandbox_task)
        api_server = _uvicorn(self._app(), self.api_port)
        api_task = asyncio.create_task(api_server.serve())
        self._pool = await create_pool(self.dsn, min_size=1, max_size=2)
        try:
            await self._until_started(api_server, api_task)
            async with httpx.AsyncClient(timeout=15.0) as http:
                webhooks = f"{self.api_url}/webhooks/airtm"
                self.sandbox.start_webhook_pump(webhooks, http=http, interval_s=0.2)
                self._started.set()
                try:
                    await self._stop.wait()
                finally:
                    await self.sandbox.stop_webhook_pump()
        finally:
            await self._pool.close()
            api_server.should_exit = True
            await api_task
            sandbox_server.should_exit = True
            await sandbox_task

    @staticmethod
    async def _until_started(server: _Server, task: asyncio.Task[None]) -> None:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)

    def _app(self) -> Any:
        """The app as ``offerhub serve`` builds it on the sandbox, with test settings."""
        providers = self.sandbox.provider_settings(f"http://127.0.0.1:{self.sandbox_port}")
        settings = msgspec.structs.replace(
            settings_for_tests(),
            airtm_webhook_secret=self.sandbox.airtm_webhook_secret,
            # Per-user creation limits are rate limiting, not money: off for random sequences.
            topups_per_user_per_min=0,
            withdrawals_per_user_per_min=0,
        )
        runtime = sandbox_runtime(
            self.sandbox, providers, wait_s=self.wait_s, deposit_poll_s=self.deposit_poll_s
        )
        return create_app(
            settings, self.dsn, public_config=sandbox_config(providers), runtime=runtime
        )
