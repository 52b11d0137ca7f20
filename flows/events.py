"""The transactional outbox: :func:`emit` writes one event in the caller's transaction.

An event exists if and only if the change it describes committed (api.md 6.1), because both
are written by one transaction. Readers (SSE, outbound webhooks) follow ``sequence``.
"""

from datetime import datetime
from typing import Any, Final, LiteralString

import asyncpg
import msgspec

from common.ids import new_id

__all__ = ["Event", "emit", "events_of_resource"]


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """An outbox row: the envelope of api.md 6.1."""

    id: str
    sequence: int
    type: str
    occurred_at: datetime
    marketplace_id: str
    resource_type: str
    resource_id: str
    data: dict[str, Any]


# occurred_at is the transaction's timestamp, i.e. the same instant for every event of a change.
INSERT_EVENT: Final[LiteralString] = """
INSERT INTO events (id, marketplace_id, type, resource_type, resource_id, data)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
RETURNING id, sequence, type, occurred_at, marketplace_id, resource_type, resource_id, data
"""

EVENTS_OF_RESOURCE: Final[LiteralString] = """
SELECT id, sequence, type, occurred_at, marketplace_id, resource_type, resource_id, data
FROM events WHERE marketplace_id = $1 AND resource_id = $2 ORDER BY sequence
"""


async def emit(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    type: str,
    resource_type: str,
    resource_id: str,
    data: dict[str, Any],
) -> Event:
    """Append one event to the outbox, inside the caller's transaction.

    ``data`` must be JSON-ready: amounts already formatted as decimal strings, times as
    RFC 3339 strings or datetimes (encoded by the pool's jsonb codec).
    """
    row = await conn.fetchrow(
        INSERT_EVENT, new_id("evt_"), marketplace_id, type, resource_type, resource_id, data
    )
    assert row is not None
    return msgspec.convert(dict(row), type=Event)


async def events_of_resource(
    conn: asyncpg.Connection, marketplace_id: str, resource_id: str
) -> list[Event]:
    """Every event of one resource, in change order (tests and the audit trail)."""
    rows = await conn.fetch(EVENTS_OF_RESOURCE, marketplace_id, resource_id)
    return [msgspec.convert(dict(row), type=Event) for row in rows]
