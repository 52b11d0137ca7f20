"""A real server for the SDK tests: the app on the sandbox, served by uvicorn over real HTTP.

The app is built as ``tests.api.support.running_api_on_sandbox`` builds it (real provider
clients to an in-process sandbox, the operation runner, the deposit monitor), but served by
uvicorn on a free localhost port in a thread with its own event loop, so that both the blocking
and the asyncio client talk to it over TCP. ``call`` runs a coroutine in that loop (to drive the
sandbox's control API). Tests also get transport wrappers that lose answers on purpose.
"""

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import uvicorn
from offerhub_client import OfferHub

from api.app import create_app
from api.serve import sandbox_config
from providers.sandbox.app import Sandbox
from tests.api.support import MASTER_KEY, sandbox_runtime, settings_for_tests

T = TypeVar("T")


class _ThreadServer(uvicorn.Server):
    """uvicorn in a thread: no signal handlers, and its loop kept for ``call``."""

    loop: asyncio.AbstractEventLoop | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)


class LiveServer:
    """The running server: its API URL, its sandbox and a way into its event loop."""

    def __init__(self, base_url: str, sandbox: Sandbox, server: _ThreadServer) -> None:
        self.base_url = base_url
        self.sandbox = sandbox
        self._server = server

    def call(self, work: Callable[[], Awaitable[T]], timeout_s: float = 60.0) -> T:
        """Run ``work()`` in the server's loop and wait for its result."""
        assert self._server.loop is not None
        future = asyncio.run_coroutine_threadsafe(_run(work), self._server.loop)
        return future.result(timeout_s)

    def control(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the sandbox's control API (``deposits``, ``faults``, ...)."""
        sandbox = self.sandbox
        control_url = sandbox.provider_settings("http://sandbox.test").control_url

        async def post() -> dict[str, Any]:
            transport = httpx.ASGITransport(app=sandbox.asgi_app())
            async with httpx.AsyncClient(transport=transport) as http:
                response = await http.post(f"{control_url}/{path}", json=body)
            assert response.status_code == 200, response.text
            return dict(response.json())

        return self.call(post)

    def tenant(self, name: str) -> str:
        """A new marketplace (5 % fee) and an all-scope key in it, made with the SDK."""
        with OfferHub(self.base_url, MASTER_KEY) as master:
            marketplace = master.marketplaces.create(name=name)
            issued = master.auth.create_key(
                name="sdk-tests", scopes=["*"], marketplace_id=marketplace.id
            )
        return issued.key


async def _run(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


@contextlib.contextmanager
def live_server(dsn: str, *, deposit_poll_s: float | None = 0.2) -> Iterator[LiveServer]:
    """Serve the app on the sandbox on a free port until the block ends."""
    sandbox = Sandbox(seed=3, start_s=1_800_000_000)
    providers = sandbox.provider_settings("http://sandbox.test")
    runtime = sandbox_runtime(
        sandbox,
        providers,
        wait_s=10.0,
        deposit_poll_s=deposit_poll_s,
        transport=httpx.ASGITransport(app=sandbox.asgi_app()),
    )
    app = create_app(
        settings_for_tests(), dsn, public_config=sandbox_config(providers), runtime=runtime
    )
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        loop="asyncio",
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = _ThreadServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if server.started or not thread.is_alive():
                break
            thread.join(0.05)
        assert server.started, "the server did not start"
        yield LiveServer(f"http://127.0.0.1:{port}/api/v1", sandbox, server)
    finally:
        server.should_exit = True
        thread.join(30)
        listener.close()


class LoseFirstAnswer(httpx.HTTPTransport):
    """Lets the server answer the first request matching ``method`` and ``path_suffix``, then
    drops that answer and raises ``httpx.ReadTimeout``: the effect happened, the client never
    learnt it. Records ``(method, path, Idempotency-Key, status or None)`` of every request.
    """

    def __init__(self, method: str, path_suffix: str) -> None:
        super().__init__()
        self.method, self.path_suffix = method, path_suffix
        self.dropped = False
        self.log: list[tuple[str, str, str | None, int | None]] = []

    def _matches(self, request: httpx.Request) -> bool:
        return request.method == self.method and request.url.path.endswith(self.path_suffix)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        key = request.headers.get("Idempotency-Key")
        if self._matches(request) and not self.dropped:
            self.dropped = True
            response.read()
            response.close()
            self.log.append((request.method, request.url.path, key, None))
            raise httpx.ReadTimeout("answer lost on purpose", request=request)
        self.log.append((request.method, request.url.path, key, response.status_code))
        return response


class AsyncLoseFirstAnswer(httpx.AsyncHTTPTransport):
    """:class:`LoseFirstAnswer` for the asyncio client."""

    def __init__(self, method: str, path_suffix: str) -> None:
        super().__init__()
        self.method, self.path_suffix = method, path_suffix
        self.dropped = False
        self.log: list[tuple[str, str, str | None, int | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        key = request.headers.get("Idempotency-Key")
        matches = request.method == self.method and request.url.path.endswith(self.path_suffix)
        if matches and not self.dropped:
            self.dropped = True
            await response.aread()
            await response.aclose()
            self.log.append((request.method, request.url.path, key, None))
            raise httpx.ReadTimeout("answer lost on purpose", request=request)
        self.log.append((request.method, request.url.path, key, response.status_code))
        return response
