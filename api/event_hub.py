"""SSE wake-ups of one process: LISTEN/NOTIFY in, a stable bound and wake flags out.

The hub owns one dedicated connection that ``LISTEN``s on ``offerhub_events`` (schema.sql sends
one notification per marketplace at each commit that wrote events). A notification starts a
checkpoint (``flows.event_stream``): once it is stable, :attr:`EventHub.stable_bound` moves up and
the streams of the notified marketplaces get their wake flag set. Streams then read the database
themselves (a pull model): the hub never holds events, so a slow client costs one flag, never a
queue; streams reading the same range with the same filter share one query and one encoding
(:meth:`EventHub.shared`). A poll every ``poll_s`` wakes every stream, in case a notification
was lost; a dropped listener connection is reopened and every stream is woken (they re-read,
nothing is lost). Several processes each run a hub on the same database; the bound is global,
so they agree.

:class:`StreamSlots` caps the concurrent streams per API key in this process (api.md 1.10).
:func:`purge_events_periodically` applies the event retention (api.md 3.9).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar, cast

import asyncpg
from litestar import Litestar

from api.database import connection
from api.metrics import SSE_CONNECTIONS
from flows.event_stream import Checkpoint, purge_events, running_horizon, take_checkpoint

__all__ = [
    "CHANNEL",
    "EventHub",
    "StreamSlot",
    "StreamSlots",
    "Subscription",
    "end_event_streams",
    "purge_events_periodically",
    "running_event_hub",
]

logger = logging.getLogger("offerhub.api.events")

T = TypeVar("T")

CHANNEL: Final = "offerhub_events"
# Waiting for a checkpoint to become stable: quick at first (writers commit in milliseconds),
# then slower while a long transaction holds the horizon back.
_STABLE_WAIT_FIRST_S: Final = 0.001
_STABLE_WAIT_MAX_S: Final = 0.2
_RECONNECT_MAX_S: Final = 5.0


class Subscription:
    """One stream's wake flag; set by the hub when the stable bound may cover new events."""

    def __init__(self, marketplace_id: str) -> None:
        self.marketplace_id = marketplace_id
        self.wake = asyncio.Event()


class EventHub:
    """The listener, the checkpoints and the stable bound of one API process."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, *, poll_s: float) -> None:
        self._pool = pool
        self._dsn = dsn
        self._poll_s = poll_s
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._notified: set[str] = set()
        self._wake_all = False
        self._kick = asyncio.Event()
        self._ready = asyncio.Event()
        self._listening = asyncio.Event()
        self.stable_bound = 0
        self.is_ending = False
        # Reads shared by streams in step (same marketplace, filter and range): one query and
        # one encoding for all of them. Emptied at each new bound, so it stays small.
        self._shared: dict[Hashable, asyncio.Task[Any]] = {}
        self.checkpoints = 0  # how many checkpoints became stable (tests, metrics)

    # -- streams ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def subscribe(self, marketplace_id: str) -> Iterator[Subscription]:
        """Register a stream of ``marketplace_id`` for wake-ups while the block runs."""
        subscription = Subscription(marketplace_id)
        self._subscriptions.setdefault(marketplace_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            group = self._subscriptions.get(marketplace_id)
            if group is not None:
                group.discard(subscription)
                if not group:
                    del self._subscriptions[marketplace_id]

    async def ready(self) -> int:
        """Wait for the first stable bound (start-up) and return the current one."""
        await self._ready.wait()
        return self.stable_bound

    async def listening(self) -> None:
        """Wait until the listener connection is up (tests)."""
        await self._listening.wait()

    async def shared(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """``load()``'s result, computed once for every caller asking with the same ``key``.

        The load runs as a task of its own: a caller that leaves (its client disconnected)
        does not cancel it for the others. ``key`` must name an immutable result.
        """
        task = self._shared.get(key)
        if task is None:
            task = asyncio.ensure_future(load())
            self._shared[key] = task
            task.add_done_callback(self._forget_failure(key))
        return cast(T, await asyncio.shield(task))

    def _forget_failure(self, key: Hashable) -> Callable[["asyncio.Task[Any]"], None]:
        def forget(task: "asyncio.Task[Any]") -> None:
            if task.cancelled() or task.exception() is not None:
                self._shared.pop(key, None)  # the next caller tries again

        return forget

    def end_streams(self) -> None:
        """Ask every stream to finish (shutdown): clients reconnect, to another process."""
        self.is_ending = True
        for group in self._subscriptions.values():
            for subscription in group:
                subscription.wake.set()

    def poke(self, marketplace_id: str | None = None) -> None:
        """Ask for a checkpoint now: for one marketplace's streams, or for all."""
        if marketplace_id is None:
            self._wake_all = True
        else:
            self._notified.add(marketplace_id)
        self._kick.set()

    # -- background work -------------------------------------------------------------------------

    async def run(self) -> None:
        """Listen and checkpoint until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._listen_forever())
            group.create_task(self._checkpoint_forever())

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        self.poke(str(payload) or None)

    async def _listen_forever(self) -> None:
        delay_s = 0.05
        while True:
            try:
                await self._listen_once()
                delay_s = 0.05
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                logger.warning("event listener connection lost; reconnecting", exc_info=True)
            except Exception:
                # A bug here must not silence every stream for good: log it and start over.
                logger.exception("event listener failed; restarting it")
            self._listening.clear()
            self.poke()  # whatever was notified meanwhile is found by re-reading
            await asyncio.sleep(delay_s)
            delay_s = min(_RECONNECT_MAX_S, delay_s * 2)

    async def _listen_once(self) -> None:
        listener = await asyncpg.connect(self._dsn)
        lost = asyncio.Event()
        listener.add_termination_listener(lambda _conn: lost.set())
        try:
            await listener.add_listener(CHANNEL, self._on_notification)
            self._listening.set()
            self.poke()  # events committed before LISTEN took effect
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_s):
                        await lost.wait()
                if not lost.is_set():
                    # A half-open TCP connection only shows itself when used.
                    async with asyncio.timeout(self._poll_s):
                        await listener.execute("SELECT 1")
        finally:
            if not listener.is_closed():
                listener.terminate()

    async def _checkpoint_forever(self) -> None:
        delay_s = 0.05
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # lands as the wait ends, and shutdown then hangs on this task (seen in tests).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):
                    await self._kick.wait()
            self._kick.clear()
            wake_all, notified = self._wake_all or not self._notified, self._notified
            self._wake_all, self._notified = False, set()
            try:
                async with connection(self._pool) as conn:
                    checkpoint = await take_checkpoint(conn)
                    await _wait_stable(conn, checkpoint)
                delay_s = 0.05
            except Exception as error:
                if isinstance(error, OSError | asyncpg.PostgresError | asyncpg.InterfaceError):
                    logger.warning("event checkpoint failed; retrying", exc_info=True)
                else:
                    logger.exception("event checkpoint failed unexpectedly; retrying")
                self.poke()
                await asyncio.sleep(delay_s)
                delay_s = min(_RECONNECT_MAX_S, delay_s * 2)
                continue
            self._advance(checkpoint.sequence_bound, None if wake_all else notified)

    def _advance(self, bound: int, marketplaces: set[str] | None) -> None:
        if bound > self.stable_bound:
            self.stable_bound = bound
            self._shared.clear()
        self.checkpoints += 1
        self._ready.set()
        if marketplaces is None:
            groups = list(self._subscriptions.values())
        else:
            groups = [self._subscriptions.get(key, set()) for key in marketplaces]
        for group in groups:
            for subscription in group:
                subscription.wake.set()


def end_event_streams(app: Litestar) -> None:
    """Shutdown hook of ``offerhub serve``: end the open streams of ``app`` (if it started)."""
    hub = getattr(app.state, "event_hub", None)
    if isinstance(hub, EventHub):
        hub.end_streams()


async def _wait_stable(conn: asyncpg.Connection, checkpoint: Checkpoint) -> None:
    delay_s = _STABLE_WAIT_FIRST_S
    while not checkpoint.is_stable(await running_horizon(conn)):
        await asyncio.sleep(delay_s)
        delay_s = min(_STABLE_WAIT_MAX_S, delay_s * 2)


@contextlib.asynccontextmanager
async def running_event_hub(
    pool: asyncpg.Pool, dsn: str, *, poll_s: float
) -> AsyncIterator[EventHub]:
    """Run an :class:`EventHub` in the background while the block runs (the app's lifespan)."""
    hub = EventHub(pool, dsn, poll_s=poll_s)
    task = asyncio.create_task(hub.run(), name="offerhub-event-hub")
    try:
        yield hub
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class StreamSlot:
    """One held stream slot; released once, at the latest when it is garbage collected.

    A stream's generator may be dropped without ever running (the client left before the first
    chunk), in which case its ``finally`` never runs; this object still gives the slot back.
    """

    def __init__(self, slots: "StreamSlots", key: str) -> None:
        self._slots = slots
        self._key: str | None = key

    def release(self) -> None:
        """Give the slot back (idempotent)."""
        if self._key is not None:
            self._slots.give_back(self._key)
            self._key = None

    def __del__(self) -> None:
        self.release()


class StreamSlots:
    """At most ``limit`` concurrent streams per API key, counted in this process."""

    def __init__(self, limit: int) -> None:
        assert limit >= 1
        self.limit = limit
        self._held: dict[str, int] = {}

    def take(self, key: str) -> StreamSlot | None:
        """A slot for ``key``, or None when it already holds ``limit`` of them."""
        held = self._held.get(key, 0)
        if held >= self.limit:
            return None
        self._held[key] = held + 1
        SSE_CONNECTIONS.inc()
        return StreamSlot(self, key)

    def held(self, key: str) -> int:
        """How many streams ``key`` holds now."""
        return self._held.get(key, 0)

    def give_back(self, key: str) -> None:
        """Return one of ``key``'s slots (use :meth:`StreamSlot.release`)."""
        SSE_CONNECTIONS.dec()
        remaining = self._held.get(key, 0) - 1
        if remaining > 0:
            self._held[key] = remaining
        else:
            self._held.pop(key, None)


async def purge_events_periodically(
    pool: asyncpg.Pool, *, interval_s: float, retention: timedelta
) -> None:
    """Background task of the app's lifespan: delete events past retention every ``interval_s``."""
    while True:
        await asyncio.sleep(interval_s)
        started = time.monotonic()
        try:
            async with connection(pool) as conn:
                deleted = await purge_events(conn, datetime.now(UTC) - retention)
            if deleted:
                logger.info(
                    "purged %d events past retention in %.1f s",
                    deleted,
                    time.monotonic() - started,
                )
        except (OSError, asyncpg.PostgresError):
            logger.warning("event purge failed; retrying next interval", exc_info=True)
