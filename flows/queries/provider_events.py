"""Statements of ``provider_events``: verified inbound webhooks, stored once, then applied.

``next_attempt_at`` is both the retry time of an unfinished event and the lease of whoever
processes it: storing an event leases it to the request that stored it, and a claim by the
retry loop pushes it out again, so the two rarely process the same event at once (and when a
lease runs out mid-way, applying twice is harmless: the state changes only move forward).
"""

from datetime import datetime
from enum import StrEnum
from typing import Any, Final, LiteralString

import asyncpg
import msgspec

__all__ = [
    "EscrowRef",
    "EventStatus",
    "ProviderEvent",
    "claim_due",
    "claim_event",
    "escrow_by_contract",
    "get_event",
    "get_event_by_provider_id",
    "insert_event",
    "mark_done",
    "mark_failed",
    "running_escrow_operation",
]


class EventStatus(StrEnum):
    """``provider_events.status``."""

    RECEIVED = "RECEIVED"
    APPLIED = "APPLIED"
    IGNORED = "IGNORED"
    FAILED = "FAILED"


class ProviderEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A ``provider_events`` row."""

    id: int
    provider: str
    provider_event_id: str
    type: str
    body: dict[str, Any]
    sent_at: datetime | None
    marketplace_id: str | None
    resource_type: str | None
    resource_id: str | None
    status: EventStatus
    outcome: str | None
    attempts: int
    next_attempt_at: datetime
    error: str | None
    received_at: datetime
    processed_at: datetime | None
    updated_at: datetime


class EscrowRef(msgspec.Struct, frozen=True, kw_only=True):
    """The escrow a Trustless Work contract id belongs to."""

    marketplace_id: str
    id: str
    order_id: str
    status: str


def _event(row: asyncpg.Record | None) -> ProviderEvent | None:
    return None if row is None else msgspec.convert(dict(row), type=ProviderEvent)


# Stores an event once per (provider, provider_event_id) (provider_events_dedupe_key); a repeat
# returns no row. Done statuses are stamped processed_at at once; $11 is the lease in seconds.
INSERT_EVENT: Final[LiteralString] = """
INSERT INTO provider_events (
    provider, provider_event_id, type, body, sent_at, marketplace_id, resource_type, resource_id,
    status, outcome, processed_at, next_attempt_at
)
VALUES (
    $1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10,
    CASE WHEN $9 IN ('APPLIED', 'IGNORED') THEN now() END,
    now() + make_interval(secs => $11::double precision)
)
ON CONFLICT (provider, provider_event_id) DO NOTHING
RETURNING *
"""

# One event by its provider's id (provider_events_dedupe_key).
GET_EVENT_BY_PROVIDER_ID: Final[LiteralString] = """
SELECT * FROM provider_events WHERE provider = $1 AND provider_event_id = $2
"""

# One event by primary key.
GET_EVENT: Final[LiteralString] = """
SELECT * FROM provider_events WHERE id = $1
"""

# Claims one unfinished event for processing now, whatever its due time (the request that
# stored it); counts the attempt and leases the row for $2 seconds.
CLAIM_EVENT: Final[LiteralString] = """
UPDATE provider_events
SET attempts = attempts + 1,
    next_attempt_at = now() + make_interval(secs => $2::double precision),
    updated_at = now()
WHERE id = $1 AND status IN ('RECEIVED', 'FAILED')
RETURNING *
"""

# Claims due unfinished events (provider_events_due) below the attempt limit; SKIP LOCKED lets
# several processes claim side by side, and the lease hides the rows after COMMIT.
CLAIM_DUE: Final[LiteralString] = """
WITH due AS (
    SELECT id FROM provider_events
    WHERE status IN ('RECEIVED', 'FAILED') AND next_attempt_at <= now() AND attempts < $3
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE provider_events AS e
SET attempts = e.attempts + 1,
    next_attempt_at = now() + make_interval(secs => $2::double precision),
    updated_at = now()
FROM due
WHERE e.id = due.id
RETURNING e.*
"""

# Ends an unfinished event as APPLIED or IGNORED; a finished one is left as it is (no row).
MARK_DONE: Final[LiteralString] = """
UPDATE provider_events
SET status = $2, outcome = $3, error = NULL, processed_at = now(), updated_at = now()
WHERE id = $1 AND status IN ('RECEIVED', 'FAILED')
RETURNING *
"""

# Records a failed attempt and when to try again ($3 seconds from now).
MARK_FAILED: Final[LiteralString] = """
UPDATE provider_events
SET status = 'FAILED', error = $2,
    next_attempt_at = now() + make_interval(secs => $3::double precision),
    updated_at = now()
WHERE id = $1 AND status IN ('RECEIVED', 'FAILED')
RETURNING *
"""

# The newest escrow of a contract id (escrows_by_contract_id), in any marketplace.
ESCROW_BY_CONTRACT: Final[LiteralString] = """
SELECT marketplace_id, id, order_id, status FROM escrows
WHERE contract_id = $1
ORDER BY created_at DESC
LIMIT 1
"""

# The id of an operation running on an escrow's order (operations_by_order), if any.
RUNNING_ESCROW_OPERATION: Final[LiteralString] = """
SELECT o.id FROM escrows AS e
JOIN operations AS o
    ON o.marketplace_id = e.marketplace_id AND o.resource_type = 'order'
    AND o.resource_id = e.order_id
WHERE e.marketplace_id = $1 AND e.id = $2 AND o.status = 'RUNNING'
ORDER BY o.created_at DESC
LIMIT 1
"""


async def insert_event(
    conn: asyncpg.Connection,
    *,
    provider: str,
    provider_event_id: str,
    type: str,
    body: dict[str, Any],
    sent_at: datetime | None,
    marketplace_id: str | None,
    resource_type: str | None,
    resource_id: str | None,
    status: EventStatus,
    outcome: str | None,
    lease_s: float,
) -> ProviderEvent | None:
    """Store a new event; ``None`` when the provider's event id is already stored."""
    row = await conn.fetchrow(
        INSERT_EVENT,
        provider,
        provider_event_id,
        type,
        body,
        sent_at,
        marketplace_id,
        resource_type,
        resource_id,
        status.value,
        outcome,
        lease_s,
    )
    return _event(row)


async def get_event_by_provider_id(
    conn: asyncpg.Connection, provider: str, provider_event_id: str
) -> ProviderEvent | None:
    """The stored event with this provider id, or ``None``."""
    return _event(await conn.fetchrow(GET_EVENT_BY_PROVIDER_ID, provider, provider_event_id))


async def get_event(conn: asyncpg.Connection, event_id: int) -> ProviderEvent | None:
    """One event, or ``None``."""
    return _event(await conn.fetchrow(GET_EVENT, event_id))


async def claim_event(
    conn: asyncpg.Connection, event_id: int, lease_s: float
) -> ProviderEvent | None:
    """Claim one unfinished event now; ``None`` when it is already finished."""
    return _event(await conn.fetchrow(CLAIM_EVENT, event_id, lease_s))


async def claim_due(
    conn: asyncpg.Connection, limit: int, lease_s: float, max_attempts: int
) -> list[ProviderEvent]:
    """Claim up to ``limit`` due unfinished events with fewer than ``max_attempts`` attempts."""
    rows = await conn.fetch(CLAIM_DUE, limit, lease_s, max_attempts)
    return [msgspec.convert(dict(row), type=ProviderEvent) for row in rows]


async def mark_done(
    conn: asyncpg.Connection, event_id: int, status: EventStatus, outcome: str
) -> ProviderEvent | None:
    """APPLIED or IGNORED with its outcome; ``None`` when it was finished already."""
    assert status in (EventStatus.APPLIED, EventStatus.IGNORED)
    return _event(await conn.fetchrow(MARK_DONE, event_id, status.value, outcome))


async def mark_failed(
    conn: asyncpg.Connection, event_id: int, error: str, retry_in_s: float
) -> ProviderEvent | None:
    """FAILED with the error, due again in ``retry_in_s``; ``None`` when finished already."""
    return _event(await conn.fetchrow(MARK_FAILED, event_id, error, retry_in_s))


async def escrow_by_contract(conn: asyncpg.Connection, contract_id: str) -> EscrowRef | None:
    """The escrow of a Trustless Work contract, in any marketplace."""
    row = await conn.fetchrow(ESCROW_BY_CONTRACT, contract_id)
    return None if row is None else msgspec.convert(dict(row), type=EscrowRef)


async def running_escrow_operation(
    conn: asyncpg.Connection, marketplace_id: str, escrow_id: str
) -> str | None:
    """The id of the operation running on an escrow's order, if one is."""
    value = await conn.fetchval(RUNNING_ESCROW_OPERATION, marketplace_id, escrow_id)
    return None if value is None else str(value)
