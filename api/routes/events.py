"""``GET /events``: the marketplace's events as Server-Sent Events, with exact replay (api.md 3.9).

The stream reads the outbox itself, page by page, up to the hub's stable bound
(``flows.event_stream``): every event is sent once, in sequence order, and only after every lower
sequence has committed or rolled back. It sleeps on its wake flag (``api.event_hub``) between
reads, writes a heartbeat comment when idle, and gives its per-key slot back when the client
leaves (Litestar cancels the generator on ``http.disconnect``).
"""

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final, NamedTuple, cast

import asyncpg
from litestar import Request, get
from litestar.params import QueryParameter
from litestar.response import Stream

from api.auth import CurrentCaller, requires
from api.database import connection, pool_of
from api.errors import invalid
from api.event_hub import EventHub, StreamSlot, StreamSlots
from api.rate_limit import refuse_concurrent
from api.settings import Settings
from common.errors import ServiceUnavailable
from flows.event_catalog import EventFilter, FilterError, parse_resources, parse_types
from flows.event_stream import RetentionGap, envelope_json, read_events, retention_gap
from flows.events import Event

__all__ = ["EVENTS_ROUTES", "event_frame", "stream_events"]

logger = logging.getLogger("offerhub.api.events")

RETRY_MS: Final = 5000
# Events per read: bounds what one stream holds in memory while a slow client drains it.
PAGE_SIZE: Final = 100
_MAX_SEQUENCE: Final = 2**63 - 1
_HEADERS: Final = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
HEARTBEAT: Final = b": heartbeat\n\n"
# A process that cannot take its first checkpoint (database down) answers 503 after this.
_READY_WAIT_S: Final = 10.0


def event_frame(event: Event) -> bytes:
    """One event on the wire: ``id``, ``event`` and the envelope as one ``data`` line."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event.sequence,
        event.type.encode(),
        envelope_json(event),
    )


def _truncated_frame(gap: RetentionGap) -> bytes:
    data = b'{"requested_after":%d,"oldest_available":%d}' % (
        gap.requested_after,
        gap.oldest_available,
    )
    return b"event: replay_truncated\ndata: " + data + b"\n\n"


def _resume_point(request: Request[Any, Any, Any], since: int | None) -> int | None:
    """``Last-Event-ID`` when present, else ``since``; None means "start live"."""
    header = request.headers.get("last-event-id", "").strip()
    if not header:
        return since
    if not header.isdigit() or len(header) > 19 or int(header) > _MAX_SEQUENCE:
        raise invalid("header.Last-Event-ID", "must be the sequence of an event (an integer)")
    return int(header)


def _event_filter(types: str | None, resources: str | None) -> EventFilter:
    try:
        exact_types, type_prefixes = parse_types(types)
    except FilterError as error:
        raise invalid("query.types", str(error)) from None
    try:
        resource_types, resource_ids = parse_resources(resources)
    except FilterError as error:
        raise invalid("query.resources", str(error)) from None
    return EventFilter(
        exact_types=exact_types,
        type_prefixes=type_prefixes,
        resource_types=resource_types,
        resource_ids=resource_ids,
    )


class _Page(NamedTuple):
    frames: bytes
    position: int


async def _load_page(
    pool: asyncpg.Pool, marketplace_id: str, after: int, through: int, event_filter: EventFilter
) -> _Page:
    """One read, encoded once: streams in step share it (``EventHub.shared``)."""
    async with connection(pool) as conn:
        page = await read_events(
            conn,
            marketplace_id,
            after=after,
            through=through,
            event_filter=event_filter,
            limit=PAGE_SIZE,
        )
    return _Page(b"".join(event_frame(event) for event in page.events), page.position)


async def stream_events(
    *,
    hub: EventHub,
    pool: asyncpg.Pool,
    marketplace_id: str,
    position: int,
    event_filter: EventFilter,
    heartbeat_s: float,
    gap: RetentionGap | None,
    slot: StreamSlot,
) -> AsyncIterator[bytes]:
    """The body of one stream: ``retry``, the truncation notice, then events and heartbeats."""
    try:
        yield b"retry: %d\n\n" % RETRY_MS
        if gap is not None:
            yield _truncated_frame(gap)
        written_at = time.monotonic()
        with hub.subscribe(marketplace_id) as subscription:
            while not hub.is_ending:
                # Cleared before the bound is read: a wake-up during the read is not lost.
                subscription.wake.clear()
                bound = hub.stable_bound
                if bound > position:
                    page = await hub.shared(
                        (marketplace_id, position, bound, event_filter),
                        functools.partial(
                            _load_page, pool, marketplace_id, position, bound, event_filter
                        ),
                    )
                    position = page.position
                    if page.frames:
                        yield page.frames
                        written_at = time.monotonic()
                    continue
                idle_s = heartbeat_s - (time.monotonic() - written_at)
                if idle_s <= 0:
                    yield HEARTBEAT
                    written_at = time.monotonic()
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(idle_s):
                        await subscription.wake.wait()
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        # Headers are gone: end the stream; the client resumes from its Last-Event-ID.
        logger.warning("event stream of %s ended by a database error", marketplace_id)
    finally:
        slot.release()


async def _live_position(hub: EventHub) -> int:
    """Where a stream without a resume point starts: the current stable bound."""
    try:
        async with asyncio.timeout(_READY_WAIT_S):
            return await hub.ready()
    except TimeoutError:
        raise ServiceUnavailable("The event stream is starting; retry later.") from None


@get("/events", guards=[requires("read")], tags=["events"])
async def get_events(
    request: Request[Any, Any, Any],
    caller: CurrentCaller,
    *,
    types: Annotated[
        str | None,
        QueryParameter(description="Comma list: exact types, `order.*` prefixes, or `*`."),
    ] = None,
    resources: Annotated[
        str | None,
        QueryParameter(description="Comma list of resource types and/or resource ids."),
    ] = None,
    since: Annotated[
        int | None,
        QueryParameter(ge=0, description="Resume after this sequence (unless Last-Event-ID)."),
    ] = None,
) -> Stream:
    """Stream the marketplace's events (``text/event-stream``); see api.md 3.9."""
    event_filter = _event_filter(types, resources)
    resume_after = _resume_point(request, since)
    settings: Settings = request.app.state.settings
    hub = cast(EventHub, request.app.state.event_hub)
    slots = cast(StreamSlots, request.app.state.stream_slots)
    key = caller.key_id or caller.tenant
    slot = slots.take(key)
    if slot is None:
        raise refuse_concurrent(request.scope, limit=slots.limit, retry_after_s=RETRY_MS // 1000)
    try:
        gap = None
        if resume_after is None:
            position = await _live_position(hub)
        else:
            position = resume_after
            async with connection(pool_of(request)) as conn:
                gap = await retention_gap(conn, caller.tenant, resume_after)
    except BaseException:
        slot.release()
        raise
    body = stream_events(
        hub=hub,
        pool=pool_of(request),
        marketplace_id=caller.tenant,
        position=position,
        event_filter=event_filter,
        heartbeat_s=settings.sse_heartbeat_s,
        gap=gap,
        slot=slot,
    )
    return Stream(body, media_type="text/event-stream", headers=_HEADERS)


EVENTS_ROUTES: Final = (get_events,)
