"""Statements of durable operations (``operations``): start, claim, advance, retry, fail.

Every writer that acts for a claimed operation is *fenced*: it matches ``(step_index,
attempts)`` of the claim, so a worker whose lease ran out (another worker claimed the row
since) changes nothing and gets ``None`` back.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any, Final, LiteralString

import asyncpg
import msgspec

__all__ = [
    "Operation",
    "OperationKind",
    "OperationStatus",
    "advance_step",
    "claim_due",
    "fail_operation",
    "get_operation",
    "get_running_operation",
    "insert_operation",
    "lock_claimed",
    "schedule_retry",
]


class OperationKind(StrEnum):
    """The ``operation_kind`` enum."""

    WALLET_ACTIVATE = "WALLET_ACTIVATE"
    ESCROW_CREATE = "ESCROW_CREATE"
    ESCROW_FUND = "ESCROW_FUND"
    RELEASE = "RELEASE"
    REFUND = "REFUND"
    DISPUTE_RESOLVE = "DISPUTE_RESOLVE"
    WITHDRAWAL_PAYMENT = "WITHDRAWAL_PAYMENT"
    AIRTM_PAYOUT = "AIRTM_PAYOUT"
    TOPUP_DELIVERY = "TOPUP_DELIVERY"


class OperationStatus(StrEnum):
    """The ``operation_status`` enum."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class Operation(msgspec.Struct, frozen=True, kw_only=True):
    """An ``operations`` row."""

    marketplace_id: str
    id: str
    kind: OperationKind
    status: OperationStatus
    resource_type: str
    resource_id: str
    payload: dict[str, Any]
    step: str
    step_index: int
    attempts: int
    next_attempt_at: datetime
    last_error: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


def _operation(row: asyncpg.Record | None) -> Operation | None:
    return None if row is None else msgspec.convert(dict(row), type=Operation)


# Starts an operation; a running one of the same kind on the same resource wins
# (operations_one_running_per_resource), and then nothing is returned.
INSERT_OPERATION: Final[LiteralString] = """
INSERT INTO operations (marketplace_id, id, kind, resource_type, resource_id, payload, step)
VALUES ($1, $2, $3::operation_kind, $4, $5, $6::jsonb, $7)
ON CONFLICT (marketplace_id, kind, resource_type, resource_id) WHERE status = 'RUNNING'
DO NOTHING
RETURNING *
"""

# The running operation of a kind on a resource (operations_one_running_per_resource).
GET_RUNNING_OPERATION: Final[LiteralString] = """
SELECT * FROM operations
WHERE marketplace_id = $1 AND kind = $2::operation_kind AND resource_type = $3
    AND resource_id = $4 AND status = 'RUNNING'
"""

# One operation by primary key.
GET_OPERATION: Final[LiteralString] = """
SELECT * FROM operations WHERE marketplace_id = $1 AND id = $2
"""

# Claims due operations (operations_due index); SKIP LOCKED lets any number of workers claim
# side by side, and pushing next_attempt_at out by the lease hides the rows after COMMIT.
CLAIM_DUE: Final[LiteralString] = """
WITH due AS (
    SELECT marketplace_id, id FROM operations
    WHERE status = 'RUNNING' AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE operations AS o
SET attempts = o.attempts + 1,
    next_attempt_at = now() + make_interval(secs => $2::double precision),
    updated_at = now()
FROM due
WHERE o.marketplace_id = due.marketplace_id AND o.id = due.id
RETURNING o.*
"""

# Locks a claimed operation if the claim still holds (fencing on step_index + attempts).
LOCK_CLAIMED: Final[LiteralString] = """
SELECT * FROM operations
WHERE marketplace_id = $1 AND id = $2 AND status = 'RUNNING' AND step_index = $3 AND attempts = $4
FOR UPDATE
"""

# Moves to the next step (claiming it at once for $7 seconds), or ends SUCCEEDED when $5 is
# NULL; merges $6 into the payload. Fenced.
ADVANCE_STEP: Final[LiteralString] = """
UPDATE operations
SET status = CASE WHEN $5::text IS NULL THEN 'SUCCEEDED' ELSE 'RUNNING' END::operation_status,
    step = coalesce($5::text, step),
    step_index = CASE WHEN $5::text IS NULL THEN step_index ELSE step_index + 1 END,
    attempts = CASE WHEN $5::text IS NULL THEN attempts ELSE 1 END,
    payload = payload || $6::jsonb,
    next_attempt_at = now() + make_interval(secs => $7::double precision),
    last_error = NULL,
    updated_at = now()
WHERE marketplace_id = $1 AND id = $2 AND status = 'RUNNING' AND step_index = $3 AND attempts = $4
RETURNING *
"""

# Schedules the next attempt of the current step after $5 seconds. Fenced.
SCHEDULE_RETRY: Final[LiteralString] = """
UPDATE operations
SET next_attempt_at = now() + make_interval(secs => $5::double precision),
    last_error = $6::jsonb,
    updated_at = now()
WHERE marketplace_id = $1 AND id = $2 AND status = 'RUNNING' AND step_index = $3 AND attempts = $4
RETURNING *
"""

# Ends the operation FAILED with the reason. Fenced.
FAIL_OPERATION: Final[LiteralString] = """
UPDATE operations
SET status = 'FAILED', last_error = $5::jsonb, updated_at = now()
WHERE marketplace_id = $1 AND id = $2 AND status = 'RUNNING' AND step_index = $3 AND attempts = $4
RETURNING *
"""


async def insert_operation(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    operation_id: str,
    kind: OperationKind,
    resource_type: str,
    resource_id: str,
    payload: dict[str, Any],
    step: str,
) -> Operation | None:
    """Insert a RUNNING operation; ``None`` when one is already running on the resource."""
    row = await conn.fetchrow(
        INSERT_OPERATION,
        marketplace_id,
        operation_id,
        kind.value,
        resource_type,
        resource_id,
        payload,
        step,
    )
    return _operation(row)


async def get_running_operation(
    conn: asyncpg.Connection,
    marketplace_id: str,
    kind: OperationKind,
    resource_type: str,
    resource_id: str,
) -> Operation | None:
    """The running operation of ``kind`` on a resource, if any."""
    row = await conn.fetchrow(
        GET_RUNNING_OPERATION, marketplace_id, kind.value, resource_type, resource_id
    )
    return _operation(row)


async def get_operation(
    conn: asyncpg.Connection, marketplace_id: str, operation_id: str
) -> Operation | None:
    """One operation, or ``None``."""
    return _operation(await conn.fetchrow(GET_OPERATION, marketplace_id, operation_id))


async def claim_due(conn: asyncpg.Connection, limit: int, lease_s: float) -> list[Operation]:
    """Claim up to ``limit`` due operations for ``lease_s`` seconds (commit right after)."""
    rows = await conn.fetch(CLAIM_DUE, limit, lease_s)
    return [msgspec.convert(dict(row), type=Operation) for row in rows]


async def lock_claimed(conn: asyncpg.Connection, claim: Operation) -> Operation | None:
    """Lock the operation if ``claim`` still holds it; ``None`` when the lease was lost."""
    row = await conn.fetchrow(
        LOCK_CLAIMED, claim.marketplace_id, claim.id, claim.step_index, claim.attempts
    )
    return _operation(row)


async def advance_step(
    conn: asyncpg.Connection,
    claim: Operation,
    *,
    next_step: str | None,
    payload_patch: dict[str, Any],
    lease_s: float,
) -> Operation | None:
    """Go to ``next_step`` (claimed for ``lease_s``) or finish SUCCEEDED; ``None``: lease lost."""
    row = await conn.fetchrow(
        ADVANCE_STEP,
        claim.marketplace_id,
        claim.id,
        claim.step_index,
        claim.attempts,
        next_step,
        payload_patch,
        lease_s,
    )
    return _operation(row)


async def schedule_retry(
    conn: asyncpg.Connection, claim: Operation, *, delay_s: float, error: dict[str, Any]
) -> Operation | None:
    """Retry the current step after ``delay_s``; ``None`` when the lease was lost."""
    row = await conn.fetchrow(
        SCHEDULE_RETRY,
        claim.marketplace_id,
        claim.id,
        claim.step_index,
        claim.attempts,
        delay_s,
        error,
    )
    return _operation(row)


async def fail_operation(
    conn: asyncpg.Connection, claim: Operation, *, error: dict[str, Any]
) -> Operation | None:
    """End the operation FAILED with ``error``; ``None`` when the lease was lost."""
    row = await conn.fetchrow(
        FAIL_OPERATION, claim.marketplace_id, claim.id, claim.step_index, claim.attempts, error
    )
    return _operation(row)
