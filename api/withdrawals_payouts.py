"""The provider side of the withdrawal routes: waiting for operations, reading and cancelling.

Called outside any database transaction. Each provider read is handed to the domain
(``flows.withdrawals.apply_provider_status``) in its own short transaction; the domain moves a
withdrawal only forward, so a refresh racing the operation's own end, a webhook or
reconciliation changes it once.

Answers (api.md 1.9, 3.8): a crypto withdrawal is 201 once final (COMPLETED, or FAILED after a
definitive on-chain refusal) and 202 while its payment is in flight. An Airtm withdrawal is
answered once its payout exists at Airtm (and, when committed, once the commit went through):
201 (create) or 200 (commit); 202 while Airtm cannot be reached; Airtm's refusal is 422
``AIRTM_USER_INVALID`` for a recipient it will not pay, else 502 ``PROVIDER_ERROR`` (the hold is
voided by then).
"""

import asyncio
from typing import Any, Final

import asyncpg

from api.database import connection
from api.idempotency import Reply
from api.paths import API_PREFIX
from api.provider_errors import translate
from api.queries import withdrawals as api_queries
from api.runtime import AppRuntime
from api.schemas.withdrawals import withdrawal_out
from common.errors import AirtmUserInvalid, AppError, InvalidTransition, ProviderFailure
from flows import withdrawals
from flows.queries import operations as operation_queries
from flows.queries.operations import Operation, OperationStatus
from flows.transitions import Actor
from flows.withdrawal_status import TERMINAL
from flows.withdrawals import StatusUpdate, Withdrawal
from ledger.db import run_in_transaction
from providers.airtm.port import Payout, PayoutStatus
from providers.errors import ProviderError, ProviderRejected
from statemachines import WithdrawalStatus

__all__ = [
    "PAST_COMMIT",
    "PAST_CREATE",
    "airtm_reply",
    "cancel_at_airtm",
    "crypto_reply",
    "payout_error",
    "refresh_withdrawal",
    "withdrawal_location",
]

# AIRTM_PAYOUT steps (flows.withdrawal_steps): create_payout, commit_payout, await_payout. A
# request waits until the operation is at least this far (or ended).
PAST_CREATE: Final = 1
PAST_COMMIT: Final = 2
_POLL_S: Final = 0.05
# Airtm's refusals of a recipient (providers.md 4.1) -> AIRTM_USER_INVALID reasons (api.md 2).
_RECIPIENT_REASONS: Final = {
    "415059": "USER_NOT_FOUND",
    "415060": "USER_INACTIVE",
    "415061": "USER_NOT_VERIFIED",
}
_PAYOUT_NOT_FOUND: Final = "415005"
_PAYOUT_CANNOT_CANCEL: Final = "415055"


def withdrawal_location(withdrawal_id: str) -> str:
    """The URL of a withdrawal."""
    return f"{API_PREFIX}/withdrawals/{withdrawal_id}"


async def _current(runtime: AppRuntime, row: Withdrawal) -> Withdrawal:
    async with connection(runtime.pool) as conn:
        return await withdrawals.get_withdrawal(
            conn, marketplace_id=row.marketplace_id, withdrawal_id=row.id
        )


async def _update(runtime: AppRuntime, row: Withdrawal, actor: Actor, **news: Any) -> Withdrawal:
    """Apply provider news (``apply_provider_status`` keywords) in one transaction."""

    async def work(conn: asyncpg.Connection) -> StatusUpdate:
        return await withdrawals.apply_provider_status(
            conn, marketplace_id=row.marketplace_id, withdrawal_id=row.id, actor=actor, **news
        )

    update = await run_in_transaction(runtime.pool, work)
    return update.withdrawal


async def crypto_reply(runtime: AppRuntime, row: Withdrawal, operation: Operation) -> Reply:
    """Wait (bounded) for the payment: 201 once the withdrawal is final, else 202."""
    runtime.started()
    await runtime.wait(row.marketplace_id, operation.id)
    current = await _current(runtime, row)
    status = 201 if current.status in TERMINAL else 202
    return Reply(withdrawal_out(current), status_code=status, location=withdrawal_location(row.id))


async def _wait_past(runtime: AppRuntime, operation: Operation, step_index: int) -> Operation:
    """Wait up to the request's bound until the operation ended or reached ``step_index``."""
    runtime.started()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + runtime.wait_s
    while True:
        async with connection(runtime.pool) as conn:
            latest = await operation_queries.get_operation(
                conn, operation.marketplace_id, operation.id
            )
        assert latest is not None, "an operation vanished"
        done = latest.status != OperationStatus.RUNNING or latest.step_index >= step_index
        if done or loop.time() >= deadline:
            return latest
        await asyncio.sleep(_POLL_S)


def payout_error(operation: Operation, withdrawal_id: str) -> AppError:
    """The error of a FAILED AIRTM_PAYOUT: a refused recipient, else ``PROVIDER_ERROR``."""
    error = operation.last_error or {}
    reason = error.get("reason")
    message = str(error.get("message") or reason or "Airtm refused the payout")
    if isinstance(reason, str) and reason in _RECIPIENT_REASONS:
        return AirtmUserInvalid(
            message,
            reason=_RECIPIENT_REASONS[reason],
            withdrawal_id=withdrawal_id,
            operation_id=operation.id,
        )
    return ProviderFailure(
        message,
        provider=error.get("provider") or "airtm",
        provider_status=error.get("status"),
        provider_message=message,
        provider_code=reason,
        withdrawal_id=withdrawal_id,
        operation_id=operation.id,
    )


async def airtm_reply(
    runtime: AppRuntime,
    row: Withdrawal,
    operation: Operation,
    actor: Actor,
    *,
    past_step: int,
    done_status: int,
) -> Reply:
    """Wait (bounded) for the payout's creation or commit, record its status, answer.

    Raises:
        AppError: the operation FAILED (``payout_error``); its hook voided the hold already.
    """
    latest = await _wait_past(runtime, operation, past_step)
    location = withdrawal_location(row.id)
    if latest.status == OperationStatus.FAILED:
        current = await _current(runtime, row)
        if current.status == WithdrawalStatus.WITHDRAWAL_FAILED:
            raise payout_error(latest, row.id)
    elif latest.step_index < past_step and latest.status == OperationStatus.RUNNING:
        return Reply(withdrawal_out(await _current(runtime, row)), 202, location)
    payout_id, payout_status = latest.payload.get("payout_id"), latest.payload.get("payout_status")
    if latest.status == OperationStatus.RUNNING and isinstance(payout_status, str):
        # The operation polls on until a final status; what it read so far is news already.
        current = await _update(
            runtime, row, actor, airtm_status=payout_status, airtm_payout_id=payout_id
        )
    else:
        current = await _current(runtime, row)
    return Reply(
        withdrawal_out(current),
        status_code=done_status,
        location=location if done_status == 201 else None,
    )


def _is_not_found(error: ProviderRejected) -> bool:
    return error.status_code == 404 or error.reason == _PAYOUT_NOT_FOUND


async def _find_payout(runtime: AppRuntime, row: Withdrawal) -> Payout | None:
    """The withdrawal's payout (by id once known, else by code), or ``None``."""
    try:
        if row.airtm_payout_id is not None:
            return await runtime.fiat.get_payout(row.airtm_payout_id)
        return await runtime.fiat.get_payout_by_code(row.id)
    except ProviderRejected as error:
        if _is_not_found(error):
            return None
        raise translate(error) from error
    except ProviderError as error:
        raise translate(error) from error


async def _apply_payout(
    runtime: AppRuntime, row: Withdrawal, payout: Payout, actor: Actor
) -> Withdrawal:
    ended_badly = payout.status in (PayoutStatus.FAILED, PayoutStatus.CANCELED)
    return await _update(
        runtime,
        row,
        actor,
        airtm_status=payout.raw_status,
        airtm_payout_id=payout.id,
        failure_code=payout.reason_code if ended_badly else None,
        failure_reason=(payout.reason_description or payout.reason_code) if ended_badly else None,
    )


async def _refresh_crypto(runtime: AppRuntime, row: Withdrawal, actor: Actor) -> Withdrawal:
    """Look the payment's hash up on Horizon; a successful one completes the withdrawal.

    Anything else is left to the payment operation, which alone may fail it (funds are never
    returned on a guess); the runner is woken so it looks again at once.
    """
    runtime.started()
    tx_hash = row.transaction_hash
    if tx_hash is None:
        async with connection(runtime.pool) as conn:
            tx_hash = await api_queries.latest_payment_hash(conn, row.marketplace_id, row.id)
    if tx_hash is None:
        return row
    try:
        found = await runtime.network.get_transaction(tx_hash)
    except ProviderError as error:
        raise translate(error) from error
    if not (found.found and found.successful):
        return row
    return await _update(runtime, row, actor, chain_outcome="confirmed", transaction_hash=tx_hash)


async def refresh_withdrawal(runtime: AppRuntime, row: Withdrawal, actor: Actor) -> Withdrawal:
    """Read the provider's view of a non-final withdrawal and apply it.

    Raises:
        AppError: the provider read failed (``api.provider_errors`` mapping).
    """
    if row.status in TERMINAL:
        return row
    if row.destination_type == "crypto":
        return await _refresh_crypto(runtime, row, actor)
    payout = await _find_payout(runtime, row)
    if payout is None:
        return row
    return await _apply_payout(runtime, row, payout, actor)


async def cancel_at_airtm(runtime: AppRuntime, row: Withdrawal, actor: Actor) -> None:
    """Cancel the withdrawal's payout at Airtm, if there is one.

    Raises:
        InvalidTransition: Airtm refused because the payout moved on; the withdrawal is
            refreshed first, so it shows where the payout is.
        AppError: another provider failure (``api.provider_errors`` mapping).
    """
    payout = await _find_payout(runtime, row)
    if payout is None or payout.status is PayoutStatus.CANCELED:
        return
    try:
        await runtime.fiat.cancel_payout(payout.id)
        return
    except ProviderRejected as error:
        if error.reason != _PAYOUT_CANNOT_CANCEL:
            raise translate(error) from error
    except ProviderError as error:
        raise translate(error) from error
    moved = await _find_payout(runtime, row)
    current = row if moved is None else await _apply_payout(runtime, row, moved, actor)
    raise InvalidTransition(
        f"the payout is already {moved.raw_status if moved else 'processed'} at Airtm",
        resource_type="withdrawal",
        resource_id=row.id,
        current_state=current.status,
        allowed_states=[
            WithdrawalStatus.WITHDRAWAL_CREATED.value,
            WithdrawalStatus.WITHDRAWAL_PENDING_USER_ACTION.value,
        ],
    )
