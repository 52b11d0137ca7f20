"""Statements of ``operation_submissions``: the Stellar transactions operations signed.

A row is committed before its transaction is submitted; PENDING rows are also the
per-source-account lock (``operation_submissions_one_pending_per_source``).
"""

from datetime import datetime
from enum import StrEnum
from typing import Any, Final, LiteralString

import asyncpg
import msgspec

from flows.queries.operations import Operation

__all__ = [
    "Submission",
    "SubmissionStatus",
    "get_confirmed_submission",
    "get_pending_submission",
    "insert_submission",
    "settle_submission",
]


class SubmissionStatus(StrEnum):
    """The ``operation_submission_status`` enum."""

    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


class Submission(msgspec.Struct, frozen=True, kw_only=True):
    """An ``operation_submissions`` row."""

    marketplace_id: str
    operation_id: str
    step: str
    step_index: int
    tx_hash: str
    envelope_xdr: str
    max_time: datetime
    source_account: str
    sequence: int
    status: SubmissionStatus
    result_codes: dict[str, Any] | None
    created_at: datetime
    settled_at: datetime | None


def _submission(row: asyncpg.Record | None) -> Submission | None:
    return None if row is None else msgspec.convert(dict(row), type=Submission)


# Records a signed tx before it is submitted. operation_submissions_one_pending_per_source
# refuses a second in-flight tx from the same source account (the per-wallet lock).
INSERT_SUBMISSION: Final[LiteralString] = """
INSERT INTO operation_submissions (
    marketplace_id, operation_id, step, step_index, tx_hash, envelope_xdr, max_time,
    source_account, sequence
)
VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::bigint), $8, $9)
RETURNING *
"""

# The in-flight tx of an operation's step (operation_submissions_one_pending_per_operation).
GET_PENDING_SUBMISSION: Final[LiteralString] = """
SELECT * FROM operation_submissions
WHERE marketplace_id = $1 AND operation_id = $2 AND step_index = $3 AND status = 'PENDING'
"""

# The latest confirmed tx of an operation's step (operation_submissions_by_operation).
GET_CONFIRMED_SUBMISSION: Final[LiteralString] = """
SELECT * FROM operation_submissions
WHERE marketplace_id = $1 AND operation_id = $2 AND step_index = $3 AND status = 'CONFIRMED'
ORDER BY created_at DESC
LIMIT 1
"""

# Settles an in-flight tx once its outcome is definitive; releases the source-account lock.
SETTLE_SUBMISSION: Final[LiteralString] = """
UPDATE operation_submissions
SET status = $2::operation_submission_status, result_codes = $3::jsonb, settled_at = now()
WHERE tx_hash = $1 AND status = 'PENDING'
RETURNING *
"""


async def insert_submission(
    conn: asyncpg.Connection,
    claim: Operation,
    *,
    tx_hash: str,
    envelope_xdr: str,
    max_time_s: int,
    source_account: str,
    sequence: int,
) -> Submission:
    """Record a signed tx of the claim's current step, before submitting it.

    Raises:
        asyncpg.UniqueViolationError: another tx from ``source_account`` is in flight
            (``operation_submissions_one_pending_per_source``).
    """
    row = await conn.fetchrow(
        INSERT_SUBMISSION,
        claim.marketplace_id,
        claim.id,
        claim.step,
        claim.step_index,
        tx_hash,
        envelope_xdr,
        max_time_s,
        source_account,
        sequence,
    )
    submission = _submission(row)
    assert submission is not None
    return submission


async def get_pending_submission(conn: asyncpg.Connection, claim: Operation) -> Submission | None:
    """The in-flight tx of the claim's current step, if any."""
    row = await conn.fetchrow(
        GET_PENDING_SUBMISSION, claim.marketplace_id, claim.id, claim.step_index
    )
    return _submission(row)


async def get_confirmed_submission(conn: asyncpg.Connection, claim: Operation) -> Submission | None:
    """The latest confirmed tx of the claim's current step, if any."""
    row = await conn.fetchrow(
        GET_CONFIRMED_SUBMISSION, claim.marketplace_id, claim.id, claim.step_index
    )
    return _submission(row)


async def settle_submission(
    conn: asyncpg.Connection,
    tx_hash: str,
    status: SubmissionStatus,
    result_codes: dict[str, Any] | None,
) -> Submission | None:
    """Settle an in-flight tx; ``None`` when it was not PENDING any more."""
    row = await conn.fetchrow(SETTLE_SUBMISSION, tx_hash, status.value, result_codes)
    return _submission(row)
