"""Statements of the webhook delivery worker: claim, read the target, record, attempt log.

Every writer that records the outcome of a claimed delivery is *fenced* on ``(status =
'PENDING', attempts)`` of its claim: a worker whose lease ran out, or whose endpoint was
deleted meanwhile, changes nothing and gets ``None`` back.
"""

from datetime import datetime
from typing import Any, Final, LiteralString

import asyncpg
import msgspec

from flows.queries.webhooks import DeliveryRow

__all__ = [
    "DeliveryAttempt",
    "DeliveryTarget",
    "cancel_claimed",
    "claim_due",
    "fail_claimed",
    "get_target",
    "insert_attempt",
    "list_attempts",
    "record_failure",
    "record_success",
]


class DeliveryTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Where and what a claimed delivery sends: its endpoint and its event (if retained)."""

    url: str
    endpoint_status: str
    secret_sealed: str | None
    # Only while its grace period runs.
    previous_secret_sealed: str | None
    # The event's columns; all None when the event is no longer retained.
    event_id: str | None
    event_sequence: int | None
    event_type: str | None
    occurred_at: datetime | None
    resource_type: str | None
    resource_id: str | None
    data: dict[str, Any] | None


class DeliveryAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """A ``webhook_delivery_attempts`` row."""

    marketplace_id: str
    delivery_id: str
    attempt: int
    attempted_at: datetime
    duration_ms: int
    response_status: int | None
    error: str | None
    succeeded: bool


def _delivery(row: asyncpg.Record | None) -> DeliveryRow | None:
    return None if row is None else msgspec.convert(dict(row), type=DeliveryRow)


# -- deliveries: the worker -----------------------------------------------------------------------

# Claims due deliveries (webhook_deliveries_due) that no earlier pending delivery of the same
# resource and endpoint holds back (webhook_deliveries_pending_by_resource). SKIP LOCKED lets
# workers claim side by side; pushing next_attempt_at out by the lease ($2 s) hides the rows
# after COMMIT, and a dead worker's rows come back once the lease passes.
CLAIM_DUE: Final[LiteralString] = """
WITH due AS (
    SELECT d.marketplace_id, d.id FROM webhook_deliveries AS d
    WHERE d.status = 'PENDING' AND d.next_attempt_at <= now()
        AND (d.redelivery_of IS NOT NULL OR NOT EXISTS (
            SELECT 1 FROM webhook_deliveries AS earlier
            WHERE earlier.marketplace_id = d.marketplace_id
                AND earlier.endpoint_id = d.endpoint_id
                AND earlier.resource_id = d.resource_id
                AND earlier.status = 'PENDING'
                AND earlier.redelivery_of IS NULL
                AND earlier.event_sequence < d.event_sequence
        ))
    ORDER BY d.next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries AS w
SET attempts = w.attempts + 1,
    next_attempt_at = now() + make_interval(secs => $2::double precision),
    first_attempt_at = coalesce(w.first_attempt_at, now()),
    last_attempt_at = now()
FROM due
WHERE w.marketplace_id = due.marketplace_id AND w.id = due.id
RETURNING w.*
"""

# The endpoint (any status) and the event of a delivery; the event columns are NULL once
# retention purged it.
GET_TARGET: Final[LiteralString] = """
SELECT endpoint.url, endpoint.status AS endpoint_status, endpoint.secret_sealed,
    CASE WHEN endpoint.previous_secret_expires_at > now()
        THEN endpoint.previous_secret_sealed END AS previous_secret_sealed,
    event.id AS event_id, event.sequence AS event_sequence, event.type AS event_type,
    event.occurred_at, event.resource_type, event.resource_id, event.data
FROM webhook_endpoints AS endpoint
LEFT JOIN events AS event
    ON event.sequence = $3 AND event.marketplace_id = endpoint.marketplace_id
WHERE endpoint.marketplace_id = $1 AND endpoint.id = $2
"""

_FENCE: Final[LiteralString] = """
WHERE marketplace_id = $1 AND id = $2 AND status = 'PENDING' AND attempts = $3
RETURNING *
"""

# A 2xx: SUCCEEDED. Fenced.
RECORD_SUCCESS: Final[LiteralString] = (
    """
UPDATE webhook_deliveries
SET status = 'SUCCEEDED', next_attempt_at = NULL, completed_at = now(),
    last_response_status = $4, last_error = NULL
"""
    + _FENCE
)

# A failed attempt: retry after $4 s, unless that is past first_attempt_at + $5 s (then
# FAILED). Fenced.
RECORD_FAILURE: Final[LiteralString] = """
UPDATE webhook_deliveries AS d
SET status = CASE WHEN retry.at > d.first_attempt_at + retry.max_age
        THEN 'FAILED' ELSE 'PENDING' END,
    next_attempt_at = CASE WHEN retry.at > d.first_attempt_at + retry.max_age
        THEN NULL ELSE retry.at END,
    completed_at = CASE WHEN retry.at > d.first_attempt_at + retry.max_age THEN now() END,
    last_response_status = $6, last_error = $7
FROM (SELECT now() + make_interval(secs => $4::double precision) AS at,
        make_interval(secs => $5::double precision) AS max_age) AS retry
WHERE d.marketplace_id = $1 AND d.id = $2 AND d.status = 'PENDING' AND d.attempts = $3
RETURNING d.*
"""

# The endpoint was deleted under the claim: CANCELED. Fenced.
CANCEL_CLAIMED: Final[LiteralString] = (
    """
UPDATE webhook_deliveries
SET status = 'CANCELED', next_attempt_at = NULL, completed_at = now()
"""
    + _FENCE
)

# Nothing can ever be sent (the event is no longer retained): FAILED at once. Fenced.
FAIL_CLAIMED: Final[LiteralString] = (
    """
UPDATE webhook_deliveries
SET status = 'FAILED', next_attempt_at = NULL, completed_at = now(), last_error = $4
"""
    + _FENCE
)

# One attempt of the log (webhook_delivery_attempts_pkey: one row per attempt number).
INSERT_ATTEMPT: Final[LiteralString] = """
INSERT INTO webhook_delivery_attempts (
    marketplace_id, delivery_id, attempt, attempted_at, duration_ms, response_status, error,
    succeeded
)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (marketplace_id, delivery_id, attempt) DO NOTHING
"""

# A delivery's attempts, in order.
LIST_ATTEMPTS: Final[LiteralString] = """
SELECT * FROM webhook_delivery_attempts
WHERE marketplace_id = $1 AND delivery_id = $2
ORDER BY attempt
"""


async def claim_due(conn: asyncpg.Connection, limit: int, lease_s: float) -> list[DeliveryRow]:
    """Claim up to ``limit`` due deliveries for ``lease_s``; the caller commits at once."""
    rows = await conn.fetch(CLAIM_DUE, limit, lease_s)
    return [msgspec.convert(dict(row), type=DeliveryRow) for row in rows]


async def get_target(conn: asyncpg.Connection, claim: DeliveryRow) -> DeliveryTarget | None:
    """The endpoint (any status) and the event envelope of a delivery."""
    row = await conn.fetchrow(
        GET_TARGET, claim.marketplace_id, claim.endpoint_id, claim.event_sequence
    )
    return None if row is None else msgspec.convert(dict(row), type=DeliveryTarget)


async def record_success(
    conn: asyncpg.Connection, claim: DeliveryRow, response_status: int
) -> DeliveryRow | None:
    """Mark a claimed delivery SUCCEEDED; ``None`` when the claim no longer holds."""
    return _delivery(
        await conn.fetchrow(
            RECORD_SUCCESS, claim.marketplace_id, claim.id, claim.attempts, response_status
        )
    )


async def record_failure(
    conn: asyncpg.Connection,
    claim: DeliveryRow,
    *,
    retry_in_s: float,
    max_age_s: float,
    response_status: int | None,
    error: str,
) -> DeliveryRow | None:
    """Schedule the next attempt, or end FAILED past the age limit; fenced like the others."""
    return _delivery(
        await conn.fetchrow(
            RECORD_FAILURE,
            claim.marketplace_id,
            claim.id,
            claim.attempts,
            retry_in_s,
            max_age_s,
            response_status,
            error,
        )
    )


async def cancel_claimed(conn: asyncpg.Connection, claim: DeliveryRow) -> DeliveryRow | None:
    """Cancel a claimed delivery whose endpoint is gone."""
    return _delivery(
        await conn.fetchrow(CANCEL_CLAIMED, claim.marketplace_id, claim.id, claim.attempts)
    )


async def fail_claimed(
    conn: asyncpg.Connection, claim: DeliveryRow, error: str
) -> DeliveryRow | None:
    """End a claimed delivery FAILED at once with ``error``."""
    return _delivery(
        await conn.fetchrow(FAIL_CLAIMED, claim.marketplace_id, claim.id, claim.attempts, error)
    )


async def insert_attempt(conn: asyncpg.Connection, attempt: DeliveryAttempt) -> None:
    """Log one HTTP attempt (a repeat of the same attempt number is ignored)."""
    await conn.execute(
        INSERT_ATTEMPT,
        attempt.marketplace_id,
        attempt.delivery_id,
        attempt.attempt,
        attempt.attempted_at,
        attempt.duration_ms,
        attempt.response_status,
        attempt.error,
        attempt.succeeded,
    )


async def list_attempts(
    conn: asyncpg.Connection, marketplace_id: str, delivery_id: str
) -> list[DeliveryAttempt]:
    """Every logged attempt of a delivery, in order."""
    rows = await conn.fetch(LIST_ATTEMPTS, marketplace_id, delivery_id)
    return [msgspec.convert(dict(row), type=DeliveryAttempt) for row in rows]
