"""A minimal asyncio HTTP/1.1 keep-alive client for the API benchmarks.

httpx costs about 1 ms of client CPU per request on a 2-core machine: at a few thousand
requests per second the load generator would compete with the server it measures. This client
writes prepared request bytes on one persistent connection and reads the status line, the
headers and a ``Content-Length`` (or chunked) body; nothing else (no redirects, no TLS, no
pipelining). Each :class:`Connection` serves one request at a time, as a client would.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Connection", "HttpError", "Response", "drive", "percentile"]


class HttpError(RuntimeError):
    """The server answered with an unexpected status, or broke the protocol."""


class _Stale(Exception):
    """The server closed the connection before answering anything."""


class Response:
    """A status, lower-cased headers and the body bytes."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


class Connection:
    """One keep-alive connection to ``host:port``; ``headers`` go on every request."""

    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None) -> None:
        self.host = host
        self.port = port
        fixed = {"Host": f"{host}:{port}", **(headers or {})}
        self._fixed = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> "Connection":
        """Connect (again, after the server closed the connection)."""
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def close(self) -> None:
        """Close the connection."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):  # the server may have closed first
                await self._writer.wait_closed()
            self._writer = None

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        expect: int | tuple[int, ...] | None = None,
    ) -> Response:
        """Send one request and read its whole answer; ``expect`` checks the status.

        uvicorn closes a connection idle for 5 s: when the server closed the connection without
        answering, it is opened again and the same bytes are sent once more (safe: a POST
        carries the same Idempotency-Key, which replays it if it was applied).
        """
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        kind = "Content-Type: application/json\r\n" if body else ""
        head = (
            f"{method} {path} HTTP/1.1\r\n{self._fixed}{extra}{kind}"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        message = head.encode("latin-1") + body
        try:
            response = await self._exchange(message)
        except _Stale:
            await self.close()
            try:
                response = await self._exchange(message)
            except _Stale as again:
                raise HttpError(f"{method} {path}: the server closed the connection") from again
        if response.headers.get("connection", "").lower() == "close":
            await self.close()
        if expect is not None:
            allowed = (expect,) if isinstance(expect, int) else expect
            if response.status not in allowed:
                detail = response.body[:300].decode(errors="replace")
                raise HttpError(f"{method} {path}: {response.status} {detail}")
        return response

    async def _exchange(self, message: bytes) -> Response:
        if self._writer is None or self._reader is None or self._reader.at_eof():
            await self.close()
            await self.open()
        assert self._reader is not None
        assert self._writer is not None
        try:
            self._writer.write(message)
            head = await self._reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as closed:
            self._writer = None
            if isinstance(closed, asyncio.IncompleteReadError) and closed.partial:
                raise HttpError("the server closed the connection mid-answer") from closed
            raise _Stale from closed
        return await self._read_rest(self._reader, head)

    async def _read_rest(self, reader: asyncio.StreamReader, head: bytes) -> Response:
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _chunked(reader)
        else:
            body = b""  # 204 / 304, or a body we never ask for
        return Response(status, headers, body)


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers are sent to us
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def percentile(ordered: list[float], fraction: float) -> float:
    """The value at ``fraction`` (0..1) of an ascending list (nearest rank, clamped)."""
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * fraction) - 1))]


async def drive(
    connections: list[Connection],
    seconds: float,
    one: Callable[[Connection, int], Awaitable[None]],
) -> tuple[list[float], float]:
    """Run ``one(connection, index)`` in a loop on every connection for ``seconds``.

    Returns every call's latency in seconds (ascending) and the elapsed wall time: from the
    start to the end of the last call (calls started before the deadline all finish).
    """
    latencies: list[float] = []
    started = time.perf_counter()
    until = started + seconds

    async def loop(connection: Connection, index: int) -> None:
        while time.perf_counter() < until:
            begun = time.perf_counter()
            await one(connection, index)
            latencies.append(time.perf_counter() - begun)

    await asyncio.gather(*(loop(conn, i) for i, conn in enumerate(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return latencies, elapsed
