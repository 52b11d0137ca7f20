"""What the end of a withdrawal operation does to the withdrawal, in the worker's transaction.

WITHDRAWAL_PAYMENT SUCCEEDED: the payment is in a closed ledger, which is final, so the row goes
to ``WITHDRAWAL_PENDING`` and then ``WITHDRAWAL_COMPLETED`` with the hash. FAILED: only a
definitive refusal (a ``reason`` in the error, and no transaction of the operation that may
still land or did land) fails the row and voids the hold; anything else leaves it where it is
for a human or reconciliation, because funds are never returned on a guess.

AIRTM_PAYOUT SUCCEEDED: the payout's status is applied (``CREATED`` only stores the payout id).
FAILED: Airtm refused to create or commit the payout, so a row still ``CREATED`` or
``COMMITTED`` fails and its hold is voided; a row Airtm already moved further is left alone.
"""

import logging
from typing import Any, Final

import asyncpg

from common.errors import WithdrawalNotFound
from flows.operations import OperationHooks
from flows.queries import withdrawals as queries
from flows.queries.operations import Operation, OperationKind
from flows.transitions import Actor
from flows.withdrawal_status import StepFacts, airtm_target, apply_provider_status, move_to
from statemachines import WithdrawalStatus

__all__ = ["withdrawal_hooks"]

_log = logging.getLogger(__name__)
# Statuses in which a refused payout creation or commit means no money moved.
_PAYOUT_NOT_SENT: Final = frozenset(
    {WithdrawalStatus.WITHDRAWAL_CREATED, WithdrawalStatus.WITHDRAWAL_COMMITTED}
)


def _actor(ended: Operation) -> Actor:
    # The operation id ties the transition to the worker run that caused it.
    return Actor(type="SYSTEM", id=ended.id)


def _message(error: dict[str, Any]) -> str:
    """A human-readable reason from an operation's error document."""
    message = error.get("message")
    if isinstance(message, str) and message:
        return message
    return f"{error.get('error', 'error')}: {error.get('reason', 'unknown')}"


async def _payment_succeeded(conn: asyncpg.Connection, ended: Operation) -> None:
    tx_hash = ended.payload.get("tx_hash")
    if not isinstance(tx_hash, str):
        _log.error("withdrawal payment %s succeeded without a tx_hash", ended.id)
        return
    update = await apply_provider_status(
        conn,
        marketplace_id=ended.marketplace_id,
        withdrawal_id=ended.resource_id,
        chain_outcome="confirmed",
        transaction_hash=tx_hash,
        actor=_actor(ended),
    )
    if update.withdrawal.status != WithdrawalStatus.WITHDRAWAL_COMPLETED:
        # The chain paid a withdrawal already ended otherwise: for reconciliation and a human.
        _log.error(
            "withdrawal %s paid on chain (%s) but is %s",
            ended.resource_id,
            tx_hash,
            update.withdrawal.status,
        )


async def _payment_failed(conn: asyncpg.Connection, ended: Operation) -> None:
    error = ended.last_error or {}
    reason = error.get("reason")
    unsettled = await queries.count_unsettled_submissions(conn, ended.marketplace_id, ended.id)
    if not isinstance(reason, str) or unsettled:
        _log.error(
            "withdrawal payment %s failed without a definitive reason (%s); left as it is",
            ended.id,
            error,
        )
        return
    tx_hash = error.get("tx_hash")
    await apply_provider_status(
        conn,
        marketplace_id=ended.marketplace_id,
        withdrawal_id=ended.resource_id,
        chain_outcome="failed",
        transaction_hash=tx_hash if isinstance(tx_hash, str) else None,
        failure_code=reason,
        failure_reason=_message(error),
        actor=_actor(ended),
    )


async def _payout_succeeded(conn: asyncpg.Connection, ended: Operation) -> None:
    payload = ended.payload
    status = payload.get("payout_status")
    if not isinstance(status, str):
        _log.error("Airtm payout %s succeeded without a payout_status", ended.id)
        return
    update = await apply_provider_status(
        conn,
        marketplace_id=ended.marketplace_id,
        withdrawal_id=ended.resource_id,
        airtm_status=status,
        airtm_payout_id=payload.get("payout_id"),
        failure_reason=payload.get("failure_reason"),
        actor=_actor(ended),
    )
    if update.outcome != "applied" and update.withdrawal.status != airtm_target(status):
        _log.warning(
            "Airtm payout %s ended on %r; withdrawal %s left %s (%s)",
            ended.id,
            status,
            ended.resource_id,
            update.withdrawal.status,
            update.outcome,
        )


async def _payout_failed(conn: asyncpg.Connection, ended: Operation) -> None:
    row = await queries.lock_withdrawal(conn, ended.marketplace_id, ended.resource_id)
    if row is None:
        raise WithdrawalNotFound(withdrawal_id=ended.resource_id)
    if row.status not in _PAYOUT_NOT_SENT:
        _log.warning("Airtm payout %s failed with withdrawal in %s; left", ended.id, row.status)
        return
    error = ended.last_error or {}
    reason = error.get("reason")
    facts = StepFacts(
        failure_code=str(reason) if reason is not None else "payout_rejected",
        failure_reason=_message(error),
    )
    await move_to(conn, row, WithdrawalStatus.WITHDRAWAL_FAILED, facts=facts, actor=_actor(ended))


def withdrawal_hooks() -> dict[OperationKind, OperationHooks]:
    """The hooks of WITHDRAWAL_PAYMENT and AIRTM_PAYOUT, for the worker's ``hooks`` mapping."""
    return {
        OperationKind.WITHDRAWAL_PAYMENT: OperationHooks(
            on_succeeded=_payment_succeeded, on_failed=_payment_failed
        ),
        OperationKind.AIRTM_PAYOUT: OperationHooks(
            on_succeeded=_payout_succeeded, on_failed=_payout_failed
        ),
    }
