"""A real HTTP receiver of outbound webhooks on 127.0.0.1, for tests.

A small HTTP/1.1 server on ``asyncio.start_server`` (one request per connection). It records
every request, verifies ``OfferHub-Signature`` the way api.md 3.10 tells a marketplace to
(recompute HMAC-SHA256 over ``"<t>.<raw body>"`` with each known secret, constant-time
compare, ``t`` within 300 s), and answers with the status its ``script`` chooses.
"""

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

TOLERANCE_S = 300


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    # The known secrets that produced one of the header's v1 signatures, in header order.
    verified_with: list[str] = field(default_factory=list)

    @property
    def signatures(self) -> list[str]:
        """The ``v1`` values of the signature header, in order."""
        parts = self.headers.get("offerhub-signature", "").split(",")
        return [part.removeprefix("v1=") for part in parts if part.startswith("v1=")]


def verify(header: str, body: bytes, secret: str, now_s: float) -> bool:
    """The receiver-side check of api.md 3.10, written independently of the sender's code."""
    timestamp = None
    signatures = []
    for part in header.split(","):
        name, _, value = part.partition("=")
        if name == "t":
            timestamp = value
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit() or abs(now_s - int(timestamp)) > TOLERANCE_S:
        return False
    expected = hmac.new(
        secret.encode("utf-8"), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)


class Receiver:
    """Records requests; ``script(n)`` gives the status of the n-th request (0-based)."""

    def __init__(self, script: Callable[[int], int] | None = None) -> None:
        self.script = script or (lambda _: 200)
        self.secrets: list[str] = []
        self.requests: list[Received] = []
        self.port = 0
        self.arrived = asyncio.Event()
        # Seconds to wait before answering (a slow receiver).
        self.delay_s = 0.0

    @property
    def url(self) -> str:
        """Where to point an endpoint (plain http: tests allow insecure URLs)."""
        return f"http://127.0.0.1:{self.port}/hooks"

    def succeeded(self) -> list[Received]:
        """The requests answered with a 2xx."""
        return [request for request in self.requests if 200 <= request.answered < 300]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status = self.script(len(self.requests))
            await asyncio.sleep(self.delay_s)
            received = Received(path=path, headers=headers, body=body, answered=status)
            header = headers.get("offerhub-signature", "")
            received.verified_with = [
                secret for secret in self.secrets if verify(header, body, secret, time.time())
            ]
            self.requests.append(received)
            self.arrived.set()
            writer.write(
                f"HTTP/1.1 {status} Scripted\r\nContent-Length: 2\r\nConnection: close\r\n"
                "Location: http://127.0.0.1:1/elsewhere\r\n\r\nok".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> None:
        """Wait until ``count`` requests have arrived."""
        async with asyncio.timeout(timeout_s):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()


@contextlib.asynccontextmanager
async def running_receiver(script: Callable[[int], int] | None = None) -> AsyncIterator[Receiver]:
    """A receiver listening on an ephemeral port of 127.0.0.1."""
    receiver = Receiver(script)
    server = await asyncio.start_server(receiver._handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()
