"""Real HTTP for tests: an ASGI app served by uvicorn on a free loopback port, in this event loop.

Tests that need a socket (SSE streams, a subprocess talking to the sandbox, schemathesis over a
URL) use :func:`serving`; its lifespan is run by uvicorn as in production.
"""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

__all__ = ["free_port", "serving"]


def free_port() -> int:
    """A TCP port nothing listens on right now (loopback)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave pytest's signal handlers alone."""
        yield


@contextlib.asynccontextmanager
async def serving(app: Any, *, port: int | None = None) -> AsyncIterator[str]:
    """Serve ``app`` until the block ends; yields its base URL (``http://127.0.0.1:<port>``)."""
    port = free_port() if port is None else port
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
