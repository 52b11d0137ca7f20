"""The SDK's event stream against the real server: a forced disconnect is resumed exactly.

A transport wrapper cuts the first SSE connection after it has delivered two events (the
connection dies mid-stream, as a proxy or a network would kill it). The consumer reconnects
with ``Last-Event-ID`` = the last sequence it yielded and continues: the events it yields are
exactly those of an uncut stream, in order, none twice, and it keeps following live events.
"""

from collections.abc import Iterator

import httpx
import pytest
from offerhub_client import AsyncOfferHub, OfferHub

from tests.sdk.live import live_server

pytestmark = pytest.mark.db


class _Cut(httpx.SyncByteStream):
    """The server's bytes, frame by frame, until ``frames`` events went through."""

    def __init__(self, inner: httpx.SyncByteStream, frames: int) -> None:
        self.inner, self.frames = inner, frames

    def __iter__(self) -> Iterator[bytes]:
        buffer, sent = b"", 0
        for chunk in self.inner:
            buffer += chunk
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                yield frame + b"\n\n"
                sent += frame.startswith(b"id:")
                if sent == self.frames:
                    raise httpx.ReadError("connection cut on purpose")

    def close(self) -> None:
        self.inner.close()


class CutFirstStream(httpx.HTTPTransport):
    """Cuts the first ``GET /events`` after ``frames`` events; records each ``Last-Event-ID``."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames = frames
        self.resume_points: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not request.url.path.endswith("/events"):
            return response
        self.resume_points.append(request.headers.get("Last-Event-ID"))
        if len(self.resume_points) > 1:
            return response
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Cut(response.stream, self.frames),
            request=request,
        )


async def test_a_cut_stream_resumes_after_the_last_yielded_event(db_dsn: str) -> None:
    with live_server(db_dsn, deposit_poll_s=None) as server:
        key = server.tenant("events")
        with OfferHub(server.base_url, key) as client:
            for number in range(4):
                client.users.create(external_user_id=f"early-{number}")
            # The reference: the same replay from the start, uncut.
            with client.events.stream(types="user.created", since=0) as reference:
                expected = [next(reference) for _ in range(4)]
            cutter = CutFirstStream(frames=2)
            with (
                OfferHub(server.base_url, key, transport=cutter) as cut_client,
                cut_client.events.stream(
                    types="user.created", since=0, reconnect_delay_s=0.05
                ) as stream,
            ):
                replayed = [next(stream) for _ in range(4)]
                # Live after the replay: a user created now arrives on the same stream.
                late = client.users.create(external_user_id="late")
                live = next(stream)
                assert stream.state.reconnects == 1
        assert [event.id for event in replayed] == [event.id for event in expected]
        sequences = [event.sequence for event in replayed]
        assert sequences == sorted(set(sequences))
        assert cutter.resume_points == ["0", str(sequences[1])]
        assert (live.type, live.resource_id) == ("user.created", late.id)
        assert live.sequence > sequences[-1]


async def test_the_async_stream_follows_live_events(db_dsn: str) -> None:
    with live_server(db_dsn, deposit_poll_s=None) as server:
        key = server.tenant("async-events")
        async with AsyncOfferHub(server.base_url, key) as client:
            first = await client.users.create(external_user_id="one")
            async with client.events.stream(types=["user.*"], since=0) as stream:
                seen = await anext(stream)
                second = await client.users.create(external_user_id="two")
                following = await anext(stream)
                assert stream.last_sequence == following.sequence
        assert (seen.resource_id, following.resource_id) == (first.id, second.id)
        assert following.sequence > seen.sequence
