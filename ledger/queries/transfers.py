"""Statements that post and read transfers."""

from datetime import datetime
from typing import Final, LiteralString

import asyncpg

from ledger.planner import AccountState
from ledger.types import StoredTransfer, TransferPhase

__all__ = ["LockedBatch", "insert_transfers", "lock_and_load"]

# Locks the batch's accounts in id order, then loads the transfers it names (function in
# schema.sql; its second query sees transfers committed while we waited for the locks).
LOCK_AND_LOAD: Final[LiteralString] = """
SELECT * FROM ledger_lock_and_load_v1($1::text[], $2::text[], $3::text[], $4::text[])
"""

# Inserts accepted transfers in batch order; the ledger_transfers_apply trigger moves the
# counters (netted per account) and writes the entries.
INSERT_TRANSFERS: Final[LiteralString] = """
INSERT INTO ledger_transfers (
    marketplace_id, id, debit_account_id, credit_account_id, asset, amount, phase, pending_id,
    timeout_s, expires_at, code, linked_group, order_id, user_id, external_ref, description,
    created_at
)
SELECT t.*, $17::timestamptz
FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
    $7::ledger_transfer_phase[], $8::text[], $9::integer[], $10::timestamptz[], $11::text[],
    $12::text[], $13::text[], $14::text[], $15::text[], $16::text[]
) AS t (
    marketplace_id, id, debit_account_id, credit_account_id, asset, amount, phase, pending_id,
    timeout_s, expires_at, code, linked_group, order_id, user_id, external_ref, description
)
"""

Key = tuple[str, str]


class LockedBatch:
    """What ``lock_and_load`` returns: locked accounts, known transfers and the posting time."""

    def __init__(
        self,
        accounts: dict[Key, AccountState],
        transfers: dict[Key, StoredTransfer],
        now: datetime,
    ) -> None:
        self.accounts = accounts
        self.transfers = transfers
        self.now = now


async def lock_and_load(
    conn: asyncpg.Connection, account_keys: list[Key], transfer_keys: list[Key]
) -> LockedBatch:
    """Lock the accounts (and those of named pending transfers) and load the named transfers."""
    rows = await conn.fetch(
        LOCK_AND_LOAD,
        [key[0] for key in account_keys],
        [key[1] for key in account_keys],
        [key[0] for key in transfer_keys],
        [key[1] for key in transfer_keys],
    )
    accounts: dict[Key, AccountState] = {}
    transfers: dict[Key, StoredTransfer] = {}
    now: datetime | None = None
    for row in rows:
        now = row["now"]
        key = (row["marketplace_id"], row["id"])
        if row["kind"] == "account":
            accounts[key] = AccountState(
                row["asset"],
                row["debits_pending"],
                row["debits_posted"],
                row["credits_pending"],
                row["credits_posted"],
                row["debits_must_not_exceed_credits"],
                row["credits_must_not_exceed_debits"],
            )
        else:
            transfers[key] = _stored_transfer(row)
    if now is None:
        now = await conn.fetchval("SELECT clock_timestamp()")
    return LockedBatch(accounts, transfers, now)


async def insert_transfers(
    conn: asyncpg.Connection, rows: list[StoredTransfer], created_at: datetime
) -> None:
    """Insert accepted transfers, in order, in one statement."""
    await conn.execute(
        INSERT_TRANSFERS,
        [row.marketplace_id for row in rows],
        [row.id for row in rows],
        [row.debit_account_id for row in rows],
        [row.credit_account_id for row in rows],
        [row.asset for row in rows],
        [row.amount for row in rows],
        [row.phase.value for row in rows],
        [row.pending_id for row in rows],
        [row.timeout_s for row in rows],
        [row.expires_at for row in rows],
        [row.code for row in rows],
        [row.linked_group for row in rows],
        [row.order_id for row in rows],
        [row.user_id for row in rows],
        [row.external_ref for row in rows],
        [row.description for row in rows],
        created_at,
    )


def _stored_transfer(row: asyncpg.Record) -> StoredTransfer:
    resolution = row["resolution"]
    return StoredTransfer(
        id=row["id"],
        marketplace_id=row["marketplace_id"],
        code=row["code"],
        debit_account_id=row["debit_account_id"],
        credit_account_id=row["credit_account_id"],
        amount=row["amount"],
        asset=row["asset"],
        phase=TransferPhase(row["phase"]),
        pending_id=row["pending_id"],
        timeout_s=row["timeout_s"],
        expires_at=row["expires_at"],
        order_id=row["order_id"],
        user_id=row["user_id"],
        external_ref=row["external_ref"],
        description=row["description"],
        resolution=None if resolution is None else TransferPhase(resolution),
    )
