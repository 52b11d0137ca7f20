"""Reading balances: now, at a past time, and an account's entries with running balance."""

from datetime import datetime
from typing import Final, LiteralString

import asyncpg
import msgspec

from ledger.accounts import get_account
from ledger.types import AccountBalance, Entry

__all__ = ["account_entries", "balance", "balance_at"]

# The latest entry of an account at or before a time (ledger_entries_by_time).
SELECT_ENTRY_AT: Final[LiteralString] = """
SELECT debits_pending, debits_posted, credits_pending, credits_posted
FROM ledger_entries
WHERE marketplace_id = $1 AND account_id = $2 AND created_at <= $3
ORDER BY created_at DESC, version DESC
LIMIT 1
"""

# An account's entries after a version, oldest first, with their transfers (ledger_entries_pkey).
SELECT_ENTRIES: Final[LiteralString] = """
SELECT
    e.version, e.transfer_id, e.transfer_sequence, t.code, t.phase, e.side, t.amount,
    CASE e.side WHEN 'DEBIT' THEN t.credit_account_id ELSE t.debit_account_id END
        AS counterparty_account_id,
    e.debits_pending, e.debits_posted, e.credits_pending, e.credits_posted,
    t.external_ref, t.description, e.created_at
FROM ledger_entries AS e
JOIN ledger_transfers AS t ON t.marketplace_id = e.marketplace_id AND t.id = e.transfer_id
WHERE e.marketplace_id = $1 AND e.account_id = $2 AND e.version > $3
ORDER BY e.version
LIMIT $4
"""


async def balance(conn: asyncpg.Connection, marketplace_id: str, account_id: str) -> AccountBalance:
    """Return the account's current balances (posted, reserved, available, incoming)."""
    account = await get_account(conn, marketplace_id, account_id)
    return account.balance


async def balance_at(
    conn: asyncpg.Connection, marketplace_id: str, account_id: str, at: datetime
) -> AccountBalance:
    """Return the account's balances as they were at ``at`` (zero before its first entry)."""
    account = await get_account(conn, marketplace_id, account_id)
    row = await conn.fetchrow(SELECT_ENTRY_AT, marketplace_id, account_id, at)
    counters = (0, 0, 0, 0) if row is None else tuple(row.values())
    return AccountBalance.from_counters(account.normal_side, *counters)


async def account_entries(
    conn: asyncpg.Connection,
    marketplace_id: str,
    account_id: str,
    *,
    after_version: int = 0,
    limit: int = 100,
) -> list[Entry]:
    """Return the account's entries after ``after_version``, oldest first, each with its balance.

    ``balance_after`` is signed from the account's normal side, so a statement is the list read
    top to bottom.
    """
    account = await get_account(conn, marketplace_id, account_id)
    rows = await conn.fetch(SELECT_ENTRIES, marketplace_id, account_id, after_version, limit)
    entries = []
    for row in rows:
        fields = dict(row)
        after = AccountBalance.from_counters(
            account.normal_side,
            fields["debits_pending"],
            fields["debits_posted"],
            fields["credits_pending"],
            fields["credits_posted"],
        )
        fields["balance_after"] = after.posted
        entries.append(msgspec.convert(fields, Entry))
    return entries
