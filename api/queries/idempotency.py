"""Statements of ``idempotency_keys``: leases, stored replies and the retention purge."""

from typing import Final, LiteralString

import asyncpg
import msgspec

__all__ = [
    "StoredRecord",
    "complete",
    "get_record",
    "insert_claim",
    "lock_claim",
    "mark_effect_committed",
    "purge_expired_batch",
    "release",
    "take_over",
]


class StoredRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What a request finds when its key already has a record."""

    fingerprint: str
    status: str
    effect_committed: bool
    lease_expired: bool
    response_status: int | None
    response_body: bytes | None
    response_location: str | None


# A fresh IN_FLIGHT record holding the lease; nothing when the key already has a record.
INSERT_CLAIM: Final[LiteralString] = """
INSERT INTO idempotency_keys (namespace, key, fingerprint, claim, locked_until, expires_at)
VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), now() + make_interval(hours => $6))
ON CONFLICT (namespace, key) DO NOTHING
RETURNING claim
"""

GET_RECORD: Final[LiteralString] = """
SELECT fingerprint, status, effect_committed,
       coalesce(locked_until < now(), false) AS lease_expired,
       response_status, response_body, response_location
FROM idempotency_keys
WHERE namespace = $1 AND key = $2
"""

# Lost-response rule: an IN_FLIGHT record whose lease ran out passes to a new claim.
TAKE_OVER: Final[LiteralString] = """
UPDATE idempotency_keys SET claim = $3, locked_until = now() + make_interval(secs => $4)
WHERE namespace = $1 AND key = $2 AND status = 'IN_FLIGHT' AND locked_until < now()
RETURNING effect_committed
"""

# First statement of the effect's transaction: holds the record, so no one can take it over
# while the effect runs, and proves the lease is still ours.
LOCK_CLAIM: Final[LiteralString] = """
SELECT effect_committed FROM idempotency_keys
WHERE namespace = $1 AND key = $2 AND claim = $3 AND status = 'IN_FLIGHT'
FOR UPDATE
"""

COMPLETE: Final[LiteralString] = """
UPDATE idempotency_keys
SET status = 'DONE', claim = NULL, locked_until = NULL, completed_at = now(),
    response_status = $4, response_body = $5, response_location = $6
WHERE namespace = $1 AND key = $2 AND claim = $3 AND status = 'IN_FLIGHT'
"""

MARK_EFFECT_COMMITTED: Final[LiteralString] = """
UPDATE idempotency_keys SET effect_committed = true
WHERE namespace = $1 AND key = $2 AND claim = $3 AND status = 'IN_FLIGHT'
"""

RELEASE: Final[LiteralString] = """
DELETE FROM idempotency_keys
WHERE namespace = $1 AND key = $2 AND claim = $3 AND status = 'IN_FLIGHT'
"""

# One batch of expired records (idempotency_keys_by_expiry); SKIP LOCKED leaves busy rows.
PURGE_EXPIRED_BATCH: Final[LiteralString] = """
DELETE FROM idempotency_keys
WHERE (namespace, key) IN (
    SELECT namespace, key FROM idempotency_keys
    WHERE expires_at < now()
    ORDER BY expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
"""


def _updated_one(status: str) -> bool:
    return status.endswith(" 1")


async def insert_claim(
    conn: asyncpg.Connection,
    *,
    namespace: str,
    key: str,
    fingerprint: str,
    claim: str,
    lease_s: int,
    retention_hours: int,
) -> bool:
    """Create the IN_FLIGHT record; False when the key already has one."""
    inserted = await conn.fetchval(
        INSERT_CLAIM, namespace, key, fingerprint, claim, float(lease_s), retention_hours
    )
    return inserted is not None


async def get_record(conn: asyncpg.Connection, namespace: str, key: str) -> StoredRecord | None:
    """The record of this key, or ``None`` (released or purged meanwhile)."""
    record = await conn.fetchrow(GET_RECORD, namespace, key)
    return None if record is None else msgspec.convert(dict(record), type=StoredRecord)


async def take_over(
    conn: asyncpg.Connection, namespace: str, key: str, claim: str, lease_s: int
) -> bool | None:
    """Take an expired lease; returns whether the effect had committed, ``None`` if not taken."""
    value = await conn.fetchval(TAKE_OVER, namespace, key, claim, float(lease_s))
    return None if value is None else bool(value)


async def lock_claim(conn: asyncpg.Connection, namespace: str, key: str, claim: str) -> bool | None:
    """Lock our IN_FLIGHT record; returns ``effect_committed``, ``None`` if the lease was lost."""
    value = await conn.fetchval(LOCK_CLAIM, namespace, key, claim)
    return None if value is None else bool(value)


async def complete(
    conn: asyncpg.Connection,
    *,
    namespace: str,
    key: str,
    claim: str,
    status_code: int,
    body: bytes,
    location: str | None,
) -> bool:
    """Store the reply and mark the record DONE; False if the lease was lost."""
    result = await conn.execute(COMPLETE, namespace, key, claim, status_code, body, location)
    return _updated_one(result)


async def mark_effect_committed(
    conn: asyncpg.Connection, namespace: str, key: str, claim: str
) -> bool:
    """Note that the effect committed while the reply is still being awaited."""
    return _updated_one(await conn.execute(MARK_EFFECT_COMMITTED, namespace, key, claim))


async def release(conn: asyncpg.Connection, namespace: str, key: str, claim: str) -> None:
    """Delete our IN_FLIGHT record, so that a retry with the same key runs again."""
    await conn.execute(RELEASE, namespace, key, claim)


async def purge_expired_batch(conn: asyncpg.Connection, limit: int) -> int:
    """Delete up to ``limit`` expired records; returns how many were deleted."""
    result = await conn.execute(PURGE_EXPIRED_BATCH, limit)
    return int(result.split()[-1])
