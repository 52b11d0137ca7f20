"""Statements of ``disputes``: open, lock, assign, record a decision, stamp the resolution."""

from datetime import datetime
from typing import Final, LiteralString

import asyncpg
import msgspec

__all__ = [
    "DisputeFilters",
    "DisputeRow",
    "get_dispute",
    "insert_dispute",
    "list_disputes",
    "lock_dispute",
    "set_assignee",
    "set_decision",
    "set_resolved",
    "unresolved_dispute",
]


class DisputeRow(msgspec.Struct, frozen=True, kw_only=True):
    """A ``disputes`` row."""

    marketplace_id: str
    id: str
    order_id: str
    status: str
    opened_by: str
    reason: str
    description: str | None
    evidence: list[str]
    assigned_to: str | None
    resolution_decision: str | None
    release_amount_minor: int | None
    refund_amount_minor: int | None
    decision_note: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DisputeFilters(msgspec.Struct, frozen=True, kw_only=True):
    """Filters of ``GET /disputes`` (api.md 3.6); ``None`` means "any"; all combine with AND."""

    order_id: str | None = None
    statuses: list[str] | None = None
    opened_by: str | None = None
    assigned_to: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def _dispute(row: asyncpg.Record | None) -> DisputeRow | None:
    return None if row is None else msgspec.convert(dict(row), type=DisputeRow)


def _written(row: asyncpg.Record | None) -> DisputeRow:
    dispute = _dispute(row)
    assert dispute is not None, "the dispute is not in the status this write expects"
    return dispute


INSERT_DISPUTE: Final[LiteralString] = """
INSERT INTO disputes (marketplace_id, id, order_id, opened_by, reason, description, evidence)
VALUES ($1, $2, $3, $4, $5, $6, $7::text[])
RETURNING *
"""

GET_DISPUTE: Final[LiteralString] = """
SELECT * FROM disputes WHERE marketplace_id = $1 AND id = $2
"""

LOCK_DISPUTE: Final[LiteralString] = GET_DISPUTE + " FOR UPDATE"

# The order's dispute that is not RESOLVED (disputes_one_unresolved_per_order), locked.
UNRESOLVED_DISPUTE: Final[LiteralString] = """
SELECT * FROM disputes WHERE marketplace_id = $1 AND order_id = $2 AND status <> 'RESOLVED'
FOR UPDATE
"""

SET_ASSIGNEE: Final[LiteralString] = """
UPDATE disputes SET assigned_to = $3, updated_at = now()
WHERE marketplace_id = $1 AND id = $2
RETURNING *
"""

# Records the accepted decision; the dispute stays UNDER_REVIEW until the chain confirms.
SET_DECISION: Final[LiteralString] = """
UPDATE disputes
SET resolution_decision = $3, release_amount_minor = $4, refund_amount_minor = $5,
    decision_note = $6, resolved_by = $7, updated_at = now()
WHERE marketplace_id = $1 AND id = $2 AND status = 'UNDER_REVIEW'
RETURNING *
"""

# Runs right after the transition to RESOLVED (disputes_resolved_at_when_resolved).
SET_RESOLVED: Final[LiteralString] = """
UPDATE disputes SET resolved_at = now(), updated_at = now()
WHERE marketplace_id = $1 AND id = $2 AND status = 'RESOLVED'
RETURNING *
"""

# Keyset page, newest first (disputes_by_created); ($8, $9) is the previous page's last row.
LIST_DISPUTES: Final[LiteralString] = """
SELECT * FROM disputes
WHERE marketplace_id = $1
    AND ($2::text IS NULL OR order_id = $2)
    AND ($3::text[] IS NULL OR status = ANY($3::text[]))
    AND ($4::text IS NULL OR opened_by = $4)
    AND ($5::text IS NULL OR assigned_to = $5)
    AND ($6::timestamptz IS NULL OR created_at >= $6)
    AND ($7::timestamptz IS NULL OR created_at < $7)
    AND ($8::timestamptz IS NULL OR (created_at, id) < ($8, $9::text))
ORDER BY created_at DESC, id DESC
LIMIT $10
"""


async def insert_dispute(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    dispute_id: str,
    order_id: str,
    opened_by: str,
    reason: str,
    description: str | None,
    evidence: list[str],
) -> DisputeRow:
    """Insert an OPEN dispute (disputes_one_unresolved_per_order refuses a second one)."""
    row = await conn.fetchrow(
        INSERT_DISPUTE,
        marketplace_id,
        dispute_id,
        order_id,
        opened_by,
        reason,
        description,
        evidence,
    )
    return _written(row)


async def get_dispute(
    conn: asyncpg.Connection, marketplace_id: str, dispute_id: str
) -> DisputeRow | None:
    """One dispute, or ``None``."""
    return _dispute(await conn.fetchrow(GET_DISPUTE, marketplace_id, dispute_id))


async def lock_dispute(
    conn: asyncpg.Connection, marketplace_id: str, dispute_id: str
) -> DisputeRow | None:
    """Lock one dispute (``FOR UPDATE``), or ``None``."""
    return _dispute(await conn.fetchrow(LOCK_DISPUTE, marketplace_id, dispute_id))


async def unresolved_dispute(
    conn: asyncpg.Connection, marketplace_id: str, order_id: str
) -> DisputeRow | None:
    """Lock the order's unresolved dispute, or ``None``."""
    return _dispute(await conn.fetchrow(UNRESOLVED_DISPUTE, marketplace_id, order_id))


async def set_assignee(
    conn: asyncpg.Connection, marketplace_id: str, dispute_id: str, assigned_to: str
) -> DisputeRow:
    """Store who reviews the dispute."""
    return _written(await conn.fetchrow(SET_ASSIGNEE, marketplace_id, dispute_id, assigned_to))


async def set_decision(
    conn: asyncpg.Connection,
    marketplace_id: str,
    dispute_id: str,
    *,
    decision: str,
    release_amount_minor: int,
    refund_amount_minor: int,
    note: str | None,
    resolved_by: str | None,
) -> DisputeRow:
    """Record the accepted decision on an UNDER_REVIEW dispute."""
    row = await conn.fetchrow(
        SET_DECISION,
        marketplace_id,
        dispute_id,
        decision,
        release_amount_minor,
        refund_amount_minor,
        note,
        resolved_by,
    )
    return _written(row)


async def set_resolved(
    conn: asyncpg.Connection, marketplace_id: str, dispute_id: str
) -> DisputeRow:
    """Stamp ``resolved_at`` on a just-RESOLVED dispute."""
    return _written(await conn.fetchrow(SET_RESOLVED, marketplace_id, dispute_id))


async def list_disputes(
    conn: asyncpg.Connection,
    marketplace_id: str,
    filters: DisputeFilters,
    *,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[DisputeRow]:
    """Up to ``limit`` disputes matching ``filters``, newest first, after the keyset ``after``."""
    after_at, after_id = after if after is not None else (None, None)
    rows = await conn.fetch(
        LIST_DISPUTES,
        marketplace_id,
        filters.order_id,
        filters.statuses,
        filters.opened_by,
        filters.assigned_to,
        filters.created_after,
        filters.created_before,
        after_at,
        after_id,
        limit,
    )
    return [msgspec.convert(dict(row), type=DisputeRow) for row in rows]
