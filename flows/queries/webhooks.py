"""Statements of outbound webhooks: endpoints, the delivery log and redeliveries.

Deliveries are created by the ``webhook_fan_out_v1`` trigger on ``events`` (schema.sql), in
the transaction of the event; the worker's statements (claim, record, attempts) are in
``flows.queries.webhook_deliveries``.
"""

from datetime import datetime
from typing import Final, LiteralString

import asyncpg
import msgspec

__all__ = [
    "DeliveryRow",
    "EndpointRow",
    "cancel_pending_deliveries",
    "delete_endpoint",
    "get_delivery",
    "get_endpoint",
    "insert_endpoint",
    "insert_redelivery",
    "list_deliveries",
    "list_endpoints",
    "rotate_secret",
]


class EndpointRow(msgspec.Struct, frozen=True, kw_only=True):
    """A ``webhook_endpoints`` row (secrets sealed)."""

    marketplace_id: str
    id: str
    url: str
    description: str | None
    event_types: list[str]
    status: str
    secret_sealed: str | None
    previous_secret_sealed: str | None
    previous_secret_expires_at: datetime | None
    secret_rotated_at: datetime | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


class DeliveryRow(msgspec.Struct, frozen=True, kw_only=True):
    """A ``webhook_deliveries`` row."""

    marketplace_id: str
    id: str
    endpoint_id: str
    event_sequence: int
    event_id: str
    event_type: str
    resource_id: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    first_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_response_status: int | None
    last_error: str | None
    redelivery_of: str | None
    created_at: datetime
    completed_at: datetime | None


def _endpoint(row: asyncpg.Record | None) -> EndpointRow | None:
    return None if row is None else msgspec.convert(dict(row), type=EndpointRow)


def _delivery(row: asyncpg.Record | None) -> DeliveryRow | None:
    return None if row is None else msgspec.convert(dict(row), type=DeliveryRow)


# -- endpoints ------------------------------------------------------------------------------------

# Creates an ACTIVE endpoint (webhook_endpoints_pkey; checks on url, description, patterns).
INSERT_ENDPOINT: Final[LiteralString] = """
INSERT INTO webhook_endpoints (marketplace_id, id, url, description, event_types, secret_sealed)
VALUES ($1, $2, $3, $4, $5::text[], $6)
RETURNING *
"""

# One ACTIVE endpoint of a marketplace; $3 locks it (rotation and delete serialise on it).
GET_ENDPOINT: Final[LiteralString] = """
SELECT * FROM webhook_endpoints
WHERE marketplace_id = $1 AND id = $2 AND status = 'ACTIVE'
"""

LOCK_ENDPOINT: Final[LiteralString] = GET_ENDPOINT + "FOR UPDATE"

# ACTIVE endpoints newest first, strictly after the keyset ($2, $3) (webhook_endpoints_by_created).
LIST_ENDPOINTS: Final[LiteralString] = """
SELECT * FROM webhook_endpoints
WHERE marketplace_id = $1 AND status = 'ACTIVE'
    AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
ORDER BY created_at DESC, id DESC
LIMIT $4
"""

# New secret; the current one keeps signing for $4 seconds (0: dropped at once).
UPDATE_ROTATION: Final[LiteralString] = """
UPDATE webhook_endpoints
SET previous_secret_sealed = CASE WHEN $4::integer > 0 THEN secret_sealed END,
    previous_secret_expires_at = CASE
        WHEN $4::integer > 0 THEN now() + make_interval(secs => $4::integer) END,
    secret_sealed = $3,
    secret_rotated_at = now(),
    updated_at = now()
WHERE marketplace_id = $1 AND id = $2 AND status = 'ACTIVE'
RETURNING *
"""

# Marks the endpoint DELETED and wipes its secrets (webhook_endpoints_secret_when_active).
DELETE_ENDPOINT: Final[LiteralString] = """
UPDATE webhook_endpoints
SET status = 'DELETED', secret_sealed = NULL, previous_secret_sealed = NULL,
    previous_secret_expires_at = NULL, deleted_at = now(), updated_at = now()
WHERE marketplace_id = $1 AND id = $2 AND status = 'ACTIVE'
RETURNING *
"""


async def insert_endpoint(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    endpoint_id: str,
    url: str,
    description: str | None,
    event_types: list[str],
    secret_sealed: str,
) -> EndpointRow:
    """Insert an ACTIVE endpoint with its sealed secret."""
    row = await conn.fetchrow(
        INSERT_ENDPOINT, marketplace_id, endpoint_id, url, description, event_types, secret_sealed
    )
    endpoint = _endpoint(row)
    assert endpoint is not None
    return endpoint


async def get_endpoint(
    conn: asyncpg.Connection, marketplace_id: str, endpoint_id: str, *, lock: bool = False
) -> EndpointRow | None:
    """One ACTIVE endpoint of the marketplace (locked ``FOR UPDATE`` with ``lock``)."""
    return _endpoint(
        await conn.fetchrow(LOCK_ENDPOINT if lock else GET_ENDPOINT, marketplace_id, endpoint_id)
    )


async def list_endpoints(
    conn: asyncpg.Connection,
    marketplace_id: str,
    *,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[EndpointRow]:
    """ACTIVE endpoints, newest first, strictly after ``after``."""
    created_at, endpoint_id = after or (None, None)
    rows = await conn.fetch(LIST_ENDPOINTS, marketplace_id, created_at, endpoint_id, limit)
    return [msgspec.convert(dict(row), type=EndpointRow) for row in rows]


async def rotate_secret(
    conn: asyncpg.Connection,
    marketplace_id: str,
    endpoint_id: str,
    *,
    secret_sealed: str,
    grace_period_s: int,
) -> EndpointRow | None:
    """Install a new sealed secret; ``None`` when the endpoint is not ACTIVE."""
    row = await conn.fetchrow(
        UPDATE_ROTATION, marketplace_id, endpoint_id, secret_sealed, grace_period_s
    )
    return _endpoint(row)


async def delete_endpoint(
    conn: asyncpg.Connection, marketplace_id: str, endpoint_id: str
) -> EndpointRow | None:
    """Mark the endpoint DELETED; ``None`` when it was not ACTIVE."""
    return _endpoint(await conn.fetchrow(DELETE_ENDPOINT, marketplace_id, endpoint_id))


# -- deliveries: the log and redelivery -----------------------------------------------------------

# Cancels every pending delivery of an endpoint (webhook_deliveries_by_endpoint).
CANCEL_PENDING_DELIVERIES: Final[LiteralString] = """
UPDATE webhook_deliveries
SET status = 'CANCELED', next_attempt_at = NULL, completed_at = now()
WHERE marketplace_id = $1 AND endpoint_id = $2 AND status = 'PENDING'
"""

# An endpoint's deliveries newest first, with optional filters, after the keyset ($6, $7).
LIST_DELIVERIES: Final[LiteralString] = """
SELECT * FROM webhook_deliveries
WHERE marketplace_id = $1 AND endpoint_id = $2
    AND ($3::text[] IS NULL OR status = ANY($3::text[]))
    AND ($4::text IS NULL OR event_type = $4)
    AND ($5::text IS NULL OR event_id = $5)
    AND ($6::timestamptz IS NULL OR (created_at, id) < ($6, $7))
ORDER BY created_at DESC, id DESC
LIMIT $8
"""

# One delivery of one endpoint.
GET_DELIVERY: Final[LiteralString] = """
SELECT * FROM webhook_deliveries WHERE marketplace_id = $1 AND endpoint_id = $2 AND id = $3
"""

# A new PENDING delivery of the same event, due now, pointing at the one it repeats.
INSERT_REDELIVERY: Final[LiteralString] = """
INSERT INTO webhook_deliveries (
    marketplace_id, id, endpoint_id, event_sequence, event_id, event_type, resource_id,
    redelivery_of
)
SELECT marketplace_id, $3, endpoint_id, event_sequence, event_id, event_type, resource_id, id
FROM webhook_deliveries
WHERE marketplace_id = $1 AND id = $2
RETURNING *
"""


async def cancel_pending_deliveries(
    conn: asyncpg.Connection, marketplace_id: str, endpoint_id: str
) -> int:
    """Cancel the endpoint's pending deliveries; returns how many."""
    status = await conn.execute(CANCEL_PENDING_DELIVERIES, marketplace_id, endpoint_id)
    return int(status.split()[-1])


async def list_deliveries(
    conn: asyncpg.Connection,
    marketplace_id: str,
    endpoint_id: str,
    *,
    statuses: list[str] | None,
    event_type: str | None,
    event_id: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[DeliveryRow]:
    """An endpoint's deliveries, newest first, filtered, strictly after ``after``."""
    created_at, delivery_id = after or (None, None)
    rows = await conn.fetch(
        LIST_DELIVERIES,
        marketplace_id,
        endpoint_id,
        statuses,
        event_type,
        event_id,
        created_at,
        delivery_id,
        limit,
    )
    return [msgspec.convert(dict(row), type=DeliveryRow) for row in rows]


async def get_delivery(
    conn: asyncpg.Connection, marketplace_id: str, endpoint_id: str, delivery_id: str
) -> DeliveryRow | None:
    """One delivery of one endpoint."""
    return _delivery(await conn.fetchrow(GET_DELIVERY, marketplace_id, endpoint_id, delivery_id))


async def insert_redelivery(
    conn: asyncpg.Connection, marketplace_id: str, original_id: str, delivery_id: str
) -> DeliveryRow:
    """Queue ``original_id``'s event again as a new delivery ``delivery_id``."""
    row = _delivery(
        await conn.fetchrow(INSERT_REDELIVERY, marketplace_id, original_id, delivery_id)
    )
    assert row is not None, "the original delivery was read in this transaction"
    return row
