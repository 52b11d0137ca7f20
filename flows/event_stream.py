"""Reading the outbox in sequence order without ever passing an uncommitted event, and retention.

The problem. ``events.sequence`` is drawn when a row is inserted, not when it commits, so a
lower sequence can commit after a higher one. A reader that delivered every visible row would
send 11, then see 10 commit, and a client resuming "after 11" would never get 10 (api.md 3.9:
an event is sent only after every lower sequence has committed or rolled back).

Why a single snapshot is not enough. A snapshot tells which transactions are still running
(``xmin`` and the in-progress list) but not which sequences they hold. Skipping visible rows
whose writer is still running is not enough either: transaction A takes its id (xid 100) with
an early UPDATE; B takes xid 101 and inserts sequence 10; A inserts 11 and commits. The snapshot
now has xmin 101, row 11 was written by xid 100 < xmin, and 10 is still in flight. Transaction
ids order the start of writing, sequences order the insert: they need not agree.

The rule used here: a *stable bound*. Every writer holds its transaction id before it draws its
sequence (schema.sql, ``events_sequence_after_xid``: the trigger draws the sequence after
``pg_current_xact_id()``). A checkpoint (:func:`take_checkpoint`) reads, in one statement and in
this order, H = the last sequence drawn so far, then R = a fresh transaction id of its own (the
statement commits at once). Every sequence <= H was drawn before R existed, by a transaction
that already had its id, and ids grow, so every such writer has an id < R. As soon as a later
snapshot has ``xmin > R`` (:func:`running_horizon`), all those writers have committed or rolled
back: no row with sequence <= H can appear or vanish any more, and H is *stable*. Streams read
``after < sequence <= stable bound`` only; a page that comes back short moves the position to
the bound itself, since everything below it is final. ``writer_xid`` (the column) is what makes
the trigger's ordering checkable; the checkpoint needs only R.

Costs. One transaction id per checkpoint (one process-wide checkpoint at a time, not one per
stream). A long-running transaction anywhere in the database holds ``xmin`` back and therefore
delays delivery until it ends; it never makes a stream skip or repeat an event.

Retention: :func:`purge_events` deletes events older than a cutoff, oldest sequences first, and
remembers per marketplace the highest sequence deleted (``event_purge_marks``).
:func:`retention_gap` tells a resuming stream whether its resume point fell into the purged part.
"""

from datetime import datetime
from typing import Any, Final, LiteralString

import asyncpg
import msgspec

from common.times import format_time
from flows.event_catalog import EventFilter
from flows.events import Event

__all__ = [
    "Checkpoint",
    "EventPage",
    "RetentionGap",
    "envelope_json",
    "purge_events",
    "read_events",
    "retention_gap",
    "running_horizon",
    "take_checkpoint",
]

_PURGE_BATCH: Final = 1000


class Checkpoint(msgspec.Struct, frozen=True):
    """``sequence_bound`` becomes stable once every transaction id below ``xid`` has ended."""

    sequence_bound: int
    xid: int

    def is_stable(self, horizon: int) -> bool:
        """Whether ``horizon`` (a later snapshot's xmin) proves every writer up to here ended."""
        return horizon > self.xid


class EventPage(msgspec.Struct, frozen=True):
    """Events after a position, and where the next read starts."""

    events: list[Event]
    position: int


class RetentionGap(msgspec.Struct, frozen=True):
    """A resume point older than retention: ``replay_truncated``'s data (api.md 3.9)."""

    requested_after: int
    oldest_available: int


# The MATERIALIZED CTE yields its row before the outer projection runs, so the sequence is read
# strictly before the transaction id is assigned (the order the proof needs).
TAKE_CHECKPOINT: Final[LiteralString] = """
WITH drawn AS MATERIALIZED (
    SELECT coalesce(pg_sequence_last_value('events_sequence_seq'), 0) AS sequence_bound
)
SELECT sequence_bound, pg_current_xact_id() AS xid FROM drawn
"""

RUNNING_HORIZON: Final[LiteralString] = """
SELECT pg_snapshot_xmin(pg_current_snapshot())
"""

READ_EVENTS: Final[LiteralString] = """
SELECT id, sequence, type, occurred_at, marketplace_id, resource_type, resource_id, data
FROM events
WHERE marketplace_id = $1 AND sequence > $2 AND sequence <= $3
    AND (
        ($4::text[] IS NULL AND $5::text[] IS NULL)
        OR type = ANY(coalesce($4, '{}'))
        OR EXISTS (SELECT 1 FROM unnest($5::text[]) AS prefix WHERE starts_with(type, prefix))
    )
    AND (
        ($6::text[] IS NULL AND $7::text[] IS NULL)
        OR resource_type = ANY(coalesce($6, '{}'))
        OR resource_id = ANY(coalesce($7, '{}'))
    )
ORDER BY sequence
LIMIT $8
"""

# Oldest sequences first; a row younger than the cutoff stays even if higher ones go (a long
# transaction's event is stamped with its start): the mark still says what was deleted.
PURGE_BATCH: Final[LiteralString] = """
WITH oldest AS (
    SELECT sequence FROM events ORDER BY sequence LIMIT $2
), deleted AS (
    DELETE FROM events
    USING oldest
    WHERE events.sequence = oldest.sequence AND events.occurred_at < $1
    RETURNING events.marketplace_id, events.sequence
), marks AS (
    INSERT INTO event_purge_marks (marketplace_id, purged_through)
    SELECT marketplace_id, max(sequence) FROM deleted GROUP BY marketplace_id
    ON CONFLICT (marketplace_id) DO UPDATE
    SET purged_through = greatest(event_purge_marks.purged_through, excluded.purged_through),
        purged_at = now()
)
SELECT count(*) FROM deleted
"""

RETENTION_GAP: Final[LiteralString] = """
SELECT mark.purged_through,
    (SELECT min(sequence) FROM events WHERE marketplace_id = $1) AS oldest_retained
FROM event_purge_marks AS mark
WHERE mark.marketplace_id = $1
"""


async def take_checkpoint(conn: asyncpg.Connection) -> Checkpoint:
    """Read the last drawn sequence, then take a transaction id (which ends with the statement).

    ``conn`` must not be inside a transaction: the id has to end at once, or the checkpoint
    would wait for its own transaction.
    """
    assert not conn.is_in_transaction(), "a checkpoint runs in its own statement"
    row = await conn.fetchrow(TAKE_CHECKPOINT)
    assert row is not None
    return Checkpoint(sequence_bound=int(row["sequence_bound"]), xid=int(row["xid"]))


async def running_horizon(conn: asyncpg.Connection) -> int:
    """The xmin of a fresh snapshot: every transaction id below it has ended."""
    horizon = await conn.fetchval(RUNNING_HORIZON)
    return int(horizon)


async def read_events(
    conn: asyncpg.Connection,
    marketplace_id: str,
    *,
    after: int,
    through: int,
    event_filter: EventFilter,
    limit: int,
) -> EventPage:
    """The marketplace's events with ``after < sequence <= through`` that pass the filter.

    ``through`` must be a stable bound (see the module docstring). At most ``limit`` events, in
    sequence order; ``position`` is the last one's sequence when the page is full, otherwise
    ``through`` (nothing else up to it will ever appear).
    """
    assert limit >= 1
    if through <= after:
        return EventPage(events=[], position=after)
    rows = await conn.fetch(
        READ_EVENTS,
        marketplace_id,
        after,
        through,
        _array(event_filter.exact_types),
        _array(event_filter.type_prefixes),
        _array(event_filter.resource_types),
        _array(event_filter.resource_ids),
        limit,
    )
    events = [msgspec.convert(dict(row), type=Event) for row in rows]
    position = events[-1].sequence if len(events) == limit else through
    return EventPage(events=events, position=position)


def _array(values: tuple[str, ...] | None) -> list[str] | None:
    return None if values is None else list(values)


def envelope_json(event: Event) -> bytes:
    """The envelope of api.md 6.1 as one line of JSON: SSE ``data`` and the webhook body."""
    envelope: dict[str, Any] = {
        "id": event.id,
        "sequence": event.sequence,
        "type": event.type,
        "occurred_at": format_time(event.occurred_at),
        "marketplace_id": event.marketplace_id,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "data": event.data,
    }
    return msgspec.json.encode(envelope)


async def purge_events(conn: asyncpg.Connection, older_than: datetime) -> int:
    """Delete events stamped before ``older_than``, in batches; returns how many were deleted.

    Each batch commits on its own when ``conn`` is in autocommit, so a long purge never holds
    a long transaction (which would hold back every stream, see the module docstring).
    """
    total = 0
    while True:
        deleted = int(await conn.fetchval(PURGE_BATCH, older_than, _PURGE_BATCH))
        total += deleted
        if deleted < _PURGE_BATCH:
            return total


async def retention_gap(
    conn: asyncpg.Connection, marketplace_id: str, after: int
) -> RetentionGap | None:
    """Whether resuming after ``after`` may miss purged events; None when nothing was lost.

    ``oldest_available`` is the marketplace's oldest retained sequence, or the one after the
    purged range when nothing is retained.
    """
    row = await conn.fetchrow(RETENTION_GAP, marketplace_id)
    if row is None or after >= row["purged_through"]:
        return None
    oldest = row["oldest_retained"]
    return RetentionGap(
        requested_after=after,
        oldest_available=int(oldest) if oldest is not None else int(row["purged_through"]) + 1,
    )
