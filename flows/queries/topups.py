"""Statements of ``topups``: Airtm payins that credit a user, and their on-chain delivery."""

from datetime import datetime
from typing import Any, Final, LiteralString

import asyncpg
import msgspec

__all__ = [
    "TopUp",
    "TopUpPage",
    "find_topup",
    "get_topup",
    "insert_topup",
    "list_topups",
    "lock_topup",
    "mark_completed",
    "mark_credited",
    "mark_delivered",
    "processing_total_at",
    "processing_total_minor",
    "set_failure",
    "set_payin_fields",
    "undelivered_total_minor",
]


class TopUp(msgspec.Struct, frozen=True, kw_only=True):
    """A ``topups`` row (amounts in minor units)."""

    marketplace_id: str
    id: str
    user_id: str
    amount_minor: int
    currency: str
    status: str
    confirmation_uri: str | None
    return_url: str
    cancel_url: str
    description: str | None
    airtm_payin_id: str | None
    airtm_status: str | None
    provider_fee_minor: int | None
    failure_code: str | None
    failure_reason: str | None
    expires_at: datetime | None
    metadata: dict[str, Any] | None
    credit_transfer_id: str | None
    delivery_tx_hash: str | None
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class TopUpPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of top-ups, newest first; ``has_more`` says whether another page follows."""

    topups: list[TopUp]
    has_more: bool


def _topup(row: asyncpg.Record | None) -> TopUp | None:
    return None if row is None else msgspec.convert(dict(row), type=TopUp)


def _one(row: asyncpg.Record | None) -> TopUp:
    topup = _topup(row)
    assert topup is not None, "the top-up row vanished inside its transaction"
    return topup


# Creates a top-up in TOPUP_CREATED (topups_pkey, topups_user_fkey).
INSERT_TOPUP: Final[LiteralString] = """
INSERT INTO topups (
    marketplace_id, id, user_id, amount_minor, return_url, cancel_url, description, metadata
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
RETURNING *
"""

# One top-up by primary key.
GET_TOPUP: Final[LiteralString] = "SELECT * FROM topups WHERE marketplace_id = $1 AND id = $2"

# One top-up, row-locked until the transaction ends (every state change starts here).
LOCK_TOPUP: Final[LiteralString] = GET_TOPUP + " FOR UPDATE"

# A top-up by payin id or by code (= top-up id), in any marketplace: inbound webhooks carry
# no marketplace (topups_airtm_payin_id_key, topups_id_key).
FIND_TOPUP: Final[LiteralString] = """
SELECT * FROM topups
WHERE ($1::text IS NOT NULL AND airtm_payin_id = $1) OR ($2::text IS NOT NULL AND id = $2)
ORDER BY (airtm_payin_id = $1) DESC NULLS LAST
LIMIT 1
"""

# Stores what Airtm said about the payin; NULL arguments keep the stored value, except
# airtm_status, which always records the latest news.
SET_PAYIN_FIELDS: Final[LiteralString] = """
UPDATE topups SET
    airtm_payin_id = COALESCE(airtm_payin_id, $3),
    airtm_status = COALESCE($4, airtm_status),
    confirmation_uri = COALESCE($5, confirmation_uri),
    -- Airtm expires a payin 15 days after its creation (providers.md 4.3).
    expires_at = COALESCE(
        $6, expires_at, CASE WHEN $3::text IS NOT NULL THEN now() + interval '15 days' END
    ),
    provider_fee_minor = COALESCE($7, provider_fee_minor),
    updated_at = now()
WHERE marketplace_id = $1 AND id = $2
RETURNING *
"""

# Why a top-up failed or was canceled.
SET_FAILURE: Final[LiteralString] = """
UPDATE topups SET failure_code = $3, failure_reason = $4, updated_at = now()
WHERE marketplace_id = $1 AND id = $2
RETURNING *
"""

# Stamps a final top-up (topups_completed_when_final: fired first).
MARK_COMPLETED: Final[LiteralString] = """
UPDATE topups SET completed_at = now(), updated_at = now()
WHERE marketplace_id = $1 AND id = $2
RETURNING *
"""

# Records the credit of a SUCCEEDED top-up (topups_credited_when_succeeded).
MARK_CREDITED: Final[LiteralString] = """
UPDATE topups SET credit_transfer_id = $3, updated_at = now()
WHERE marketplace_id = $1 AND id = $2
RETURNING *
"""

# Records the confirmed on-chain delivery, once (a replay keeps the first hash).
MARK_DELIVERED: Final[LiteralString] = """
UPDATE topups SET delivery_tx_hash = $3, delivered_at = now(), updated_at = now()
WHERE marketplace_id = $1 AND id = $2 AND delivered_at IS NULL
RETURNING *
"""

# A page of top-ups, newest first, after the keyset (created_at, id) (topups_by_created,
# topups_by_user).
LIST_TOPUPS: Final[LiteralString] = """
SELECT * FROM topups
WHERE marketplace_id = $1
    AND ($2::text IS NULL OR user_id = $2)
    AND ($3::text[] IS NULL OR status = ANY($3::text[]))
    AND ($4::timestamptz IS NULL OR created_at >= $4)
    AND ($5::timestamptz IS NULL OR created_at < $5)
    AND ($6::timestamptz IS NULL OR (created_at, id) < ($6, $7::text))
ORDER BY created_at DESC, id DESC
LIMIT $8
"""

# Credited but not delivered on chain (topups_undelivered): what the user's ledger balance
# is ahead of the wallet.
UNDELIVERED_TOTAL: Final[LiteralString] = """
SELECT COALESCE(sum(amount_minor), 0)::bigint FROM topups
WHERE marketplace_id = $1 AND ($2::text IS NULL OR user_id = $2)
    AND credit_transfer_id IS NOT NULL AND delivered_at IS NULL
"""

# Top-ups of the user whose latest transition at or before $3 entered TOPUP_PROCESSING: the
# pending deposits of a past balance (topups_by_user, state_transitions_by_resource).
PROCESSING_TOTAL_AT: Final[LiteralString] = """
SELECT COALESCE(sum(t.amount_minor), 0)::bigint FROM topups AS t
WHERE t.marketplace_id = $1 AND t.user_id = $2 AND t.created_at <= $3
    AND (
        SELECT s.to_status FROM state_transitions AS s
        WHERE s.marketplace_id = t.marketplace_id AND s.resource_id = t.id
            AND s.occurred_at <= $3
        ORDER BY s.id DESC
        LIMIT 1
    ) = 'TOPUP_PROCESSING'
"""

# Top-ups in TOPUP_PROCESSING: the Balance's pending_deposits (api.md 4).
PROCESSING_TOTAL: Final[LiteralString] = """
SELECT COALESCE(sum(amount_minor), 0)::bigint FROM topups
WHERE marketplace_id = $1 AND user_id = $2 AND status = 'TOPUP_PROCESSING'
"""


async def insert_topup(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    topup_id: str,
    user_id: str,
    amount_minor: int,
    return_url: str,
    cancel_url: str,
    description: str | None,
    metadata: dict[str, Any] | None,
) -> TopUp:
    """Insert a top-up in TOPUP_CREATED."""
    row = await conn.fetchrow(
        INSERT_TOPUP,
        marketplace_id,
        topup_id,
        user_id,
        amount_minor,
        return_url,
        cancel_url,
        description,
        metadata,
    )
    return _one(row)


async def get_topup(conn: asyncpg.Connection, marketplace_id: str, topup_id: str) -> TopUp | None:
    """One top-up, or ``None``."""
    return _topup(await conn.fetchrow(GET_TOPUP, marketplace_id, topup_id))


async def lock_topup(conn: asyncpg.Connection, marketplace_id: str, topup_id: str) -> TopUp | None:
    """One top-up, row-locked until the transaction ends, or ``None``."""
    return _topup(await conn.fetchrow(LOCK_TOPUP, marketplace_id, topup_id))


async def find_topup(
    conn: asyncpg.Connection, *, payin_id: str | None = None, code: str | None = None
) -> TopUp | None:
    """The top-up of a payin, by payin id first, else by code, in any marketplace."""
    return _topup(await conn.fetchrow(FIND_TOPUP, payin_id, code))


async def set_payin_fields(
    conn: asyncpg.Connection,
    marketplace_id: str,
    topup_id: str,
    *,
    payin_id: str | None,
    airtm_status: str | None,
    confirmation_uri: str | None,
    expires_at: datetime | None,
    provider_fee_minor: int | None,
) -> TopUp:
    """Store the payin's id, status, checkout URL, expiry and fee (``None`` keeps a field)."""
    row = await conn.fetchrow(
        SET_PAYIN_FIELDS,
        marketplace_id,
        topup_id,
        payin_id,
        airtm_status,
        confirmation_uri,
        expires_at,
        provider_fee_minor,
    )
    return _one(row)


async def set_failure(
    conn: asyncpg.Connection, marketplace_id: str, topup_id: str, code: str | None, reason: str
) -> TopUp:
    """Store why the top-up failed or was canceled."""
    return _one(await conn.fetchrow(SET_FAILURE, marketplace_id, topup_id, code, reason))


async def mark_completed(conn: asyncpg.Connection, marketplace_id: str, topup_id: str) -> TopUp:
    """Stamp ``completed_at`` on a top-up that just reached a final status."""
    return _one(await conn.fetchrow(MARK_COMPLETED, marketplace_id, topup_id))


async def mark_credited(
    conn: asyncpg.Connection, marketplace_id: str, topup_id: str, transfer_id: str
) -> TopUp:
    """Record the transfer that credited a SUCCEEDED top-up."""
    return _one(await conn.fetchrow(MARK_CREDITED, marketplace_id, topup_id, transfer_id))


async def mark_delivered(
    conn: asyncpg.Connection, marketplace_id: str, topup_id: str, tx_hash: str
) -> TopUp | None:
    """Record the confirmed delivery payment; ``None`` when it was already recorded."""
    return _topup(await conn.fetchrow(MARK_DELIVERED, marketplace_id, topup_id, tx_hash))


async def list_topups(
    conn: asyncpg.Connection,
    marketplace_id: str,
    *,
    user_id: str | None = None,
    statuses: list[str] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 20,
) -> TopUpPage:
    """A page of top-ups, newest first (``created_at`` desc, then ``id`` desc).

    ``after`` is the ``(created_at, id)`` of the last top-up of the previous page;
    ``created_after`` is inclusive and ``created_before`` exclusive (api.md 1.4).
    """
    assert limit >= 1
    after_at, after_id = after if after is not None else (None, None)
    rows = await conn.fetch(
        LIST_TOPUPS,
        marketplace_id,
        user_id,
        statuses,
        created_after,
        created_before,
        after_at,
        after_id,
        limit + 1,
    )
    return TopUpPage(topups=[_one(row) for row in rows[:limit]], has_more=len(rows) > limit)


async def undelivered_total_minor(
    conn: asyncpg.Connection, marketplace_id: str, user_id: str | None = None
) -> int:
    """Credited top-ups not yet delivered on chain, for one user or the whole marketplace."""
    total = await conn.fetchval(UNDELIVERED_TOTAL, marketplace_id, user_id)
    return int(total)


async def processing_total_minor(
    conn: asyncpg.Connection, marketplace_id: str, user_id: str
) -> int:
    """The user's top-ups in TOPUP_PROCESSING (not spendable, not in ``total``)."""
    return int(await conn.fetchval(PROCESSING_TOTAL, marketplace_id, user_id))


async def processing_total_at(
    conn: asyncpg.Connection, marketplace_id: str, user_id: str, as_of: datetime
) -> int:
    """Minor units of the user's top-ups that were in TOPUP_PROCESSING at ``as_of``."""
    return int(await conn.fetchval(PROCESSING_TOTAL_AT, marketplace_id, user_id, as_of))
