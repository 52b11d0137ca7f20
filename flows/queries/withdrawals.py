"""Statements of ``withdrawals``: payouts to a Stellar address or an Airtm account.

The status column is written only by :func:`flows.transitions.fire`; the statements here set
the fields that go with a transition (committed, provider references, failure, completion).
"""

from datetime import datetime
from typing import Final, Literal, LiteralString

import asyncpg
import msgspec

__all__ = [
    "DestinationType",
    "Withdrawal",
    "WithdrawalPage",
    "count_unsettled_submissions",
    "find_by_airtm_payout",
    "get_withdrawal",
    "insert_withdrawal",
    "list_withdrawals",
    "lock_withdrawal",
    "mark_committed",
    "mark_completed",
    "set_failure",
    "set_provider_refs",
]

DestinationType = Literal["crypto", "airtm_balance"]


class Withdrawal(msgspec.Struct, frozen=True, kw_only=True):
    """A ``withdrawals`` row (amounts in minor units)."""

    marketplace_id: str
    id: str
    user_id: str
    amount_minor: int
    currency: str
    status: str
    destination_type: DestinationType
    destination_ref: str
    memo: str | None
    committed: bool
    hold_transfer_id: str
    airtm_payout_id: str | None
    transaction_hash: str | None
    failure_code: str | None
    failure_reason: str | None
    description: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class WithdrawalPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of withdrawals, newest first; ``has_more`` says whether another page follows."""

    withdrawals: list[Withdrawal]
    has_more: bool


def _withdrawal(row: asyncpg.Record | None) -> Withdrawal | None:
    return None if row is None else msgspec.convert(dict(row), type=Withdrawal)


def _one(row: asyncpg.Record | None) -> Withdrawal:
    withdrawal = _withdrawal(row)
    assert withdrawal is not None, "the withdrawal row vanished inside its transaction"
    return withdrawal


# Creates a withdrawal in WITHDRAWAL_CREATED (its hold is posted in the same transaction).
INSERT_WITHDRAWAL: Final[LiteralString] = """
INSERT INTO withdrawals (
    marketplace_id, id, user_id, amount_minor, destination_type, destination_ref, memo,
    hold_transfer_id, description
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING *
"""

# One withdrawal by primary key.
GET_WITHDRAWAL: Final[LiteralString] = """
SELECT * FROM withdrawals WHERE marketplace_id = $1 AND id = $2
"""

# One withdrawal, row-locked until the transaction ends (every state change takes this lock).
LOCK_WITHDRAWAL: Final[LiteralString] = GET_WITHDRAWAL + "FOR UPDATE\n"

# The withdrawal an Airtm payout belongs to: by payout id, else by its code (= our id), across
# marketplaces, because Airtm webhooks carry none (withdrawals_airtm_payout_key, _by_id).
FIND_BY_AIRTM_PAYOUT: Final[LiteralString] = """
SELECT * FROM withdrawals
WHERE destination_type = 'airtm_balance'
    AND (
        airtm_payout_id = $1::text
        OR (id = $2::text AND (airtm_payout_id IS NULL OR $1::text IS NULL))
    )
ORDER BY (airtm_payout_id = $1::text) IS TRUE DESC
LIMIT 1
"""

# A page of withdrawals, newest first, after the keyset (created_at, id) (withdrawals_by_created,
# withdrawals_by_user).
LIST_WITHDRAWALS: Final[LiteralString] = """
SELECT * FROM withdrawals
WHERE marketplace_id = $1
    AND ($2::text IS NULL OR user_id = $2)
    AND ($3::text[] IS NULL OR status = ANY($3::text[]))
    AND ($4::text IS NULL OR destination_type = $4)
    AND ($5::timestamptz IS NULL OR created_at >= $5)
    AND ($6::timestamptz IS NULL OR created_at < $6)
    AND ($7::timestamptz IS NULL OR (created_at, id) < ($7, $8::text))
ORDER BY created_at DESC, id DESC
LIMIT $9
"""

# Marks a locked withdrawal committed, just before its ``commit`` transition.
MARK_COMMITTED: Final[LiteralString] = """
UPDATE withdrawals SET committed = true, updated_at = now()
WHERE marketplace_id = $1 AND id = $2
RETURNING *
"""

# Stores what a provider reported; a reference already stored is kept (first answer wins).
SET_PROVIDER_REFS: Final[LiteralString] = """
UPDATE withdrawals
SET airtm_payout_id = coalesce(airtm_payout_id, $3),
    transaction_hash = coalesce(transaction_hash, $4),
    updated_at = now()
WHERE marketplace_id = $1 AND id = $2
RETURNING *
"""

# Stamps completion (the transaction's time) right after the ``complete`` transition.
MARK_COMPLETED: Final[LiteralString] = """
UPDATE withdrawals SET completed_at = now(), updated_at = now()
WHERE marketplace_id = $1 AND id = $2
RETURNING *
"""

# Records why a withdrawal failed or was canceled, right after that transition.
SET_FAILURE: Final[LiteralString] = """
UPDATE withdrawals SET failure_code = $3, failure_reason = $4, updated_at = now()
WHERE marketplace_id = $1 AND id = $2
RETURNING *
"""

# Submissions of an operation whose transaction may still land or did land; while one exists
# the payment is not definitively failed (operation_submissions_by_operation).
COUNT_UNSETTLED_SUBMISSIONS: Final[LiteralString] = """
SELECT count(*) FROM operation_submissions
WHERE marketplace_id = $1 AND operation_id = $2 AND status IN ('PENDING', 'CONFIRMED')
"""


async def insert_withdrawal(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    withdrawal_id: str,
    user_id: str,
    amount_minor: int,
    destination_type: DestinationType,
    destination_ref: str,
    memo: str | None,
    hold_transfer_id: str,
    description: str | None,
) -> Withdrawal:
    """Insert a withdrawal in ``WITHDRAWAL_CREATED``."""
    row = await conn.fetchrow(
        INSERT_WITHDRAWAL,
        marketplace_id,
        withdrawal_id,
        user_id,
        amount_minor,
        destination_type,
        destination_ref,
        memo,
        hold_transfer_id,
        description,
    )
    return _one(row)


async def get_withdrawal(
    conn: asyncpg.Connection, marketplace_id: str, withdrawal_id: str
) -> Withdrawal | None:
    """One withdrawal, or ``None``."""
    return _withdrawal(await conn.fetchrow(GET_WITHDRAWAL, marketplace_id, withdrawal_id))


async def lock_withdrawal(
    conn: asyncpg.Connection, marketplace_id: str, withdrawal_id: str
) -> Withdrawal | None:
    """One withdrawal, row-locked until the transaction ends, or ``None``."""
    return _withdrawal(await conn.fetchrow(LOCK_WITHDRAWAL, marketplace_id, withdrawal_id))


async def find_by_airtm_payout(
    conn: asyncpg.Connection, *, payout_id: str | None, code: str | None
) -> Withdrawal | None:
    """The Airtm withdrawal of a payout, matched by payout id or by code, or ``None``.

    A code match is refused when the row already names a different payout.
    """
    return _withdrawal(await conn.fetchrow(FIND_BY_AIRTM_PAYOUT, payout_id, code))


async def list_withdrawals(
    conn: asyncpg.Connection,
    marketplace_id: str,
    *,
    user_id: str | None = None,
    statuses: list[str] | None = None,
    destination_type: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 20,
) -> WithdrawalPage:
    """A page of withdrawals, newest first (``created_at`` desc, then ``id`` desc).

    ``after`` is the ``(created_at, id)`` of the last row of the previous page;
    ``created_after`` is inclusive and ``created_before`` exclusive (api.md 1.4).
    """
    assert limit >= 1
    after_at, after_id = after if after is not None else (None, None)
    rows = await conn.fetch(
        LIST_WITHDRAWALS,
        marketplace_id,
        user_id,
        statuses,
        destination_type,
        created_after,
        created_before,
        after_at,
        after_id,
        limit + 1,
    )
    withdrawals = [_one(row) for row in rows[:limit]]
    return WithdrawalPage(withdrawals=withdrawals, has_more=len(rows) > limit)


async def mark_committed(
    conn: asyncpg.Connection, marketplace_id: str, withdrawal_id: str
) -> Withdrawal:
    """Set ``committed`` on a locked withdrawal."""
    return _one(await conn.fetchrow(MARK_COMMITTED, marketplace_id, withdrawal_id))


async def set_provider_refs(
    conn: asyncpg.Connection,
    marketplace_id: str,
    withdrawal_id: str,
    *,
    airtm_payout_id: str | None,
    transaction_hash: str | None,
) -> Withdrawal:
    """Store the payout id and transaction hash a provider reported (stored ones are kept)."""
    row = await conn.fetchrow(
        SET_PROVIDER_REFS, marketplace_id, withdrawal_id, airtm_payout_id, transaction_hash
    )
    return _one(row)


async def mark_completed(
    conn: asyncpg.Connection, marketplace_id: str, withdrawal_id: str
) -> Withdrawal:
    """Stamp ``completed_at`` on a withdrawal that just completed."""
    return _one(await conn.fetchrow(MARK_COMPLETED, marketplace_id, withdrawal_id))


async def set_failure(
    conn: asyncpg.Connection,
    marketplace_id: str,
    withdrawal_id: str,
    *,
    failure_code: str | None,
    failure_reason: str | None,
) -> Withdrawal:
    """Record why a withdrawal that just failed or was canceled ended."""
    row = await conn.fetchrow(
        SET_FAILURE, marketplace_id, withdrawal_id, failure_code, failure_reason
    )
    return _one(row)


async def count_unsettled_submissions(
    conn: asyncpg.Connection, marketplace_id: str, operation_id: str
) -> int:
    """How many of the operation's transactions are in flight or confirmed."""
    count = await conn.fetchval(COUNT_UNSETTLED_SUBMISSIONS, marketplace_id, operation_id)
    return int(count)
