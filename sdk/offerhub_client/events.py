"""The event stream consumer: Server-Sent Events that reconnect and resume where they stopped.

``client.events.stream(types="order.*")`` yields :class:`Event` envelopes in sequence order.
When the connection drops, times out (the server writes a heartbeat every 15 s, so a silent
connection is a dead one) or ends, the consumer reconnects with ``Last-Event-ID`` set to the
sequence of the last event it yielded: the server replays everything after it, so no event is
skipped, and any event at or below that sequence is dropped, so none is yielded twice
(api.md 3.9). A ``replay_truncated`` notice (the resume point is older than the retention) is
kept in ``stream.truncations``. Errors that a retry cannot fix (401, 403, 400) are raised.
"""

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterable, Iterator
from typing import Any, Final

import httpx
import msgspec

from offerhub_client._call import Request
from offerhub_client._transport import AsyncTransport, SyncTransport
from offerhub_client.errors import APIConnectionError
from offerhub_client.models.events import Event, ReplayTruncated

__all__ = ["AsyncEventStream", "EventStream", "Frame", "parse_frames"]

_DEFAULT_RECONNECT_S: Final = 1.0
_MAX_RECONNECT_S: Final = 60.0
_EVENT_DECODER: Final = msgspec.json.Decoder(Event)
_TRUNCATED_DECODER: Final = msgspec.json.Decoder(ReplayTruncated)


class Frame(msgspec.Struct, frozen=True, kw_only=True):
    """One dispatched SSE block: its ``event`` name, ``data``, ``id`` and ``retry``."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry_ms: int | None = None


def parse_frames(lines: Iterable[str]) -> Iterator[Frame]:
    """SSE blocks from text lines (the WHATWG rules: comments skipped, data lines joined)."""
    fields: dict[str, Any] = {}
    data: list[str] = []
    for line in lines:
        if line == "":
            if data or fields:
                yield Frame(data="\n".join(data), **fields)
            fields, data = {}, []
            continue
        if line.startswith(":"):
            continue  # a comment: the heartbeat
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name in ("event", "id"):
            fields[name] = value
        elif name == "retry" and value.isdigit():
            fields["retry_ms"] = int(value)


class _State:
    """What a stream remembers across connections; shared by the blocking and asyncio loops."""

    def __init__(
        self,
        *,
        types: str | list[str] | None,
        resources: str | list[str] | None,
        since: int | None,
        reconnect_delay_s: float | None,
        max_reconnects: int | None,
        read_timeout_s: float,
    ) -> None:
        self.query: dict[str, str] = {}
        for name, value in (("types", types), ("resources", resources)):
            if value is not None:
                self.query[name] = value if isinstance(value, str) else ",".join(value)
        self.last_sequence = since
        self.truncations: list[ReplayTruncated] = []
        self.reconnects = 0
        self.failures = 0  # connections in a row that yielded nothing
        self.fixed_delay_s = reconnect_delay_s
        self.hinted_delay_s = _DEFAULT_RECONNECT_S
        self.max_reconnects = max_reconnects
        self.timeout = httpx.Timeout(10.0, read=read_timeout_s)

    def request(self) -> Request:
        """The ``GET /events`` of the next connection (``Last-Event-ID`` is a header)."""
        return Request(method="GET", path="/events", response=None, query=self.query)

    def headers(self, transport: SyncTransport | AsyncTransport) -> dict[str, str]:
        """Credentials, ``Accept``, and the resume point when there is one."""
        extra = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self.last_sequence is not None:
            extra["Last-Event-ID"] = str(self.last_sequence)
        return transport.headers(extra)

    def accept(self, frame: Frame) -> Event | None:
        """The event to yield for ``frame``, or None (a control frame or a duplicate)."""
        if frame.retry_ms is not None:
            self.hinted_delay_s = frame.retry_ms / 1000
        if frame.event == "replay_truncated":
            self.truncations.append(_TRUNCATED_DECODER.decode(frame.data))
            return None
        if not frame.data:
            return None
        event = _EVENT_DECODER.decode(frame.data)
        if self.last_sequence is not None and event.sequence <= self.last_sequence:
            return None
        self.last_sequence = event.sequence
        self.failures = 0
        return event

    def next_delay_s(self, cause: BaseException | None) -> float:
        """The wait before reconnecting; raises when the reconnects are used up."""
        self.reconnects += 1
        self.failures += 1
        if self.max_reconnects is not None and self.reconnects > self.max_reconnects:
            raise APIConnectionError("the event stream kept failing") from cause
        base = self.hinted_delay_s if self.fixed_delay_s is None else self.fixed_delay_s
        return float(min(_MAX_RECONNECT_S, base * 2 ** (self.failures - 1)))


class EventStream:
    """A blocking iterator of events; ``close()`` (or leaving a ``with``) ends it."""

    def __init__(self, transport: SyncTransport, **options: Any) -> None:
        self._transport = transport
        self.state = _State(**options)
        self._events = self._run()

    @property
    def last_sequence(self) -> int | None:
        """The sequence of the last event yielded (the resume point)."""
        return self.state.last_sequence

    def __iter__(self) -> "EventStream":
        return self

    def __next__(self) -> Event:
        return next(self._events)

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading and close the connection."""
        self._events.close()

    def _run(self) -> Generator[Event, None, None]:
        transport, state = self._transport, self.state
        while True:
            cause: BaseException | None = None
            try:
                yield from self._connection()
            except httpx.TransportError as error:
                cause = error
            transport.sleep(state.next_delay_s(cause))

    def _connection(self) -> Iterator[Event]:
        transport, state = self._transport, self.state
        request = transport.build(transport.http, state.request())
        request.headers.update(state.headers(transport))
        request.extensions["timeout"] = state.timeout.as_dict()
        response = transport.http.send(request, stream=True)
        try:
            if not response.is_success:
                response.read()
                if transport.policy.after_response(1, response) is None:
                    transport.codec.decode(state.request(), response)  # raises its error
                return
            for frame in parse_frames(response.iter_lines()):
                event = state.accept(frame)
                if event is not None:
                    yield event
        finally:
            response.close()


class AsyncEventStream:
    """An asyncio iterator of events; ``aclose()`` (or leaving ``async with``) ends it."""

    def __init__(self, transport: AsyncTransport, **options: Any) -> None:
        self._transport = transport
        self.state = _State(**options)
        self._events = self._run()

    @property
    def last_sequence(self) -> int | None:
        """The sequence of the last event yielded (the resume point)."""
        return self.state.last_sequence

    def __aiter__(self) -> "AsyncEventStream":
        return self

    async def __anext__(self) -> Event:
        return await anext(self._events)

    async def __aenter__(self) -> "AsyncEventStream":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop reading and close the connection."""
        await self._events.aclose()

    async def _run(self) -> AsyncGenerator[Event, None]:
        transport, state = self._transport, self.state
        while True:
            cause: BaseException | None = None
            try:
                async for event in self._connection():
                    yield event
            except httpx.TransportError as error:
                cause = error
            await transport.sleep(state.next_delay_s(cause))

    async def _connection(self) -> AsyncIterator[Event]:
        transport, state = self._transport, self.state
        request = transport.build(transport.http, state.request())
        request.headers.update(state.headers(transport))
        request.extensions["timeout"] = state.timeout.as_dict()
        response = await transport.http.send(request, stream=True)
        try:
            if not response.is_success:
                await response.aread()
                if transport.policy.after_response(1, response) is None:
                    transport.codec.decode(state.request(), response)  # raises its error
                return
            async for line in _lines(response):
                for frame in line:
                    event = state.accept(frame)
                    if event is not None:
                        yield event
        finally:
            await response.aclose()


async def _lines(response: httpx.Response) -> AsyncIterator[list[Frame]]:
    """Frames as they complete, one batch per line read (the parser is line-driven)."""
    pending: list[str] = []
    async for line in response.aiter_lines():
        pending.append(line)
        if line == "":
            yield list(parse_frames(pending))
            pending = []
