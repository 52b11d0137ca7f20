"""Posting: ``create_transfers`` validates a batch under lock and inserts it in one statement."""

import time

import asyncpg

from common.metrics import record_transfer_failure, record_transfers
from ledger.db import LedgerInvariantViolation, TransferRaced, translate_database_errors
from ledger.planner import plan_batch
from ledger.queries import transfers as queries
from ledger.types import RESOLVING_PHASES, Transfer, TransferOutcome

__all__ = ["create_transfers"]


async def create_transfers(
    conn: asyncpg.Connection, transfers: list[Transfer]
) -> list[TransferOutcome]:
    """Create transfers with TigerBeetle semantics; one outcome per transfer, in order.

    Runs in the caller's transaction: locks every account the batch touches in id order,
    decides each transfer's result against the locked balances (earlier transfers of the batch
    included; linked chains all-or-nothing), then inserts the accepted ones in one statement.
    The database applies them to the counters netted per account and writes the history, and
    re-checks bounds, pending consistency and the zero sum. A single transfer takes the same
    path: two statements, whatever the batch size.

    Args:
        conn: A connection inside a transaction owned by the caller.
        transfers: The batch, in order; each ``id`` is the transfer's idempotency key.

    Returns:
        One outcome per transfer. ``ok`` and ``exists`` mean the transfer is in the ledger.

    Raises:
        TransferRaced: A concurrent transaction created one of these ids first (retry the
            block: ``run_in_transaction`` does).
        LedgerInvariantViolation: The database refused the batch; a bug, nothing was written.
    """
    if not transfers:
        return []
    codes = [transfer.code for transfer in transfers]
    started = time.perf_counter()
    try:
        outcomes = await _create(conn, transfers)
    except (TransferRaced, LedgerInvariantViolation) as error:
        result = "raced" if isinstance(error, TransferRaced) else "invariant_violation"
        record_transfer_failure(codes, result, time.perf_counter() - started)
        raise
    record_transfers(codes, [outcome.result for outcome in outcomes], time.perf_counter() - started)
    return outcomes


async def _create(conn: asyncpg.Connection, transfers: list[Transfer]) -> list[TransferOutcome]:
    account_keys = sorted(
        {
            (transfer.marketplace_id, account_id)
            for transfer in transfers
            for account_id in (transfer.debit_account_id, transfer.credit_account_id)
            if account_id
        }
    )
    transfer_keys = sorted(
        {(transfer.marketplace_id, transfer.id) for transfer in transfers}
        | {
            (transfer.marketplace_id, transfer.pending_id)
            for transfer in transfers
            if transfer.phase in RESOLVING_PHASES and transfer.pending_id
        }
    )
    locked = await queries.lock_and_load(conn, account_keys, transfer_keys)
    plan = plan_batch(transfers, locked.accounts, locked.transfers, locked.now)
    if plan.rows:
        with translate_database_errors():
            await queries.insert_transfers(conn, plan.rows, locked.now)
    return plan.outcomes
