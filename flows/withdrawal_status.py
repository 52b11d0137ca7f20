"""Moving a withdrawal along its machine (api.md 5.6), with each step's postings and events.

:func:`walk` fires machine events on a locked row one by one; after each it writes that step's
effects: ``withdrawal.committed``, ``withdrawal.pending``, ``withdrawal.pending_user_action``,
or at the end the hold's posting or void with ``balance.released`` and ``withdrawal.completed``
/ ``failed`` / ``canceled``. :func:`apply_provider_status` turns provider news (an Airtm payout
status, or what the chain says of the payment) into the path of events that leads there from the
stored status: intermediate steps are applied in order, news behind the stored status is stale
and changes nothing, and a final status ignores everything that comes after it.
"""

from collections.abc import Awaitable, Callable
from typing import Final, Literal

import asyncpg
import msgspec

from common.errors import InvalidRequest, WithdrawalNotFound
from common.money import format_amount
from common.times import format_time
from flows.balances import CURRENCY
from flows.events import emit
from flows.queries import withdrawals as queries
from flows.queries.withdrawals import Withdrawal
from flows.transitions import Actor, fire
from flows.withdrawal_ledger import emit_balance_released, settle_hold, void_hold
from providers.airtm.port import PayoutStatus, parse_payout_status
from statemachines import WithdrawalStatus as S

__all__ = [
    "TERMINAL",
    "ChainOutcome",
    "StatusOutcome",
    "StatusUpdate",
    "StepFacts",
    "airtm_target",
    "apply_provider_status",
    "move_to",
    "plan_path",
    "walk",
]

ChainOutcome = Literal["submitted", "confirmed", "failed"]
# applied: moved; unchanged: already there; stale: behind the stored status; final: the stored
# status is terminal; unrecognized: a provider status with no mapping (needs attention).
StatusOutcome = Literal["applied", "unchanged", "stale", "final", "unrecognized"]
TERMINAL: Final = frozenset({S.WITHDRAWAL_COMPLETED, S.WITHDRAWAL_FAILED, S.WITHDRAWAL_CANCELED})
_FAILURE_REASON_MAX: Final = 1000
# What Airtm asks of the recipient while a payout is PENDING (sign up or pass KYC).
ACTION_REQUIRED: Final = "airtm_signup_or_verification"

# api.md 3.14: Airtm payout status -> withdrawal status. Missing (ERROR, BRIDGE_FAILED,
# BRIDGE_MAX_RETRIES_REACHED, unknown text): unchanged, needs attention.
_AIRTM_TARGETS: Final[dict[PayoutStatus, S]] = {
    PayoutStatus.CREATED: S.WITHDRAWAL_CREATED,
    PayoutStatus.COMMITTED: S.WITHDRAWAL_COMMITTED,
    PayoutStatus.PROCESSING: S.WITHDRAWAL_PENDING,
    PayoutStatus.PENDING_SIGNATURE: S.WITHDRAWAL_PENDING,
    PayoutStatus.SIGNED: S.WITHDRAWAL_PENDING,
    PayoutStatus.CANCEL_REQUESTED: S.WITHDRAWAL_PENDING,
    PayoutStatus.BRIDGE_CREATED: S.WITHDRAWAL_PENDING,
    PayoutStatus.BRIDGE_COMPLETED: S.WITHDRAWAL_PENDING,
    PayoutStatus.COSMOEM_COMPLETED: S.WITHDRAWAL_PENDING,
    PayoutStatus.PENDING: S.WITHDRAWAL_PENDING_USER_ACTION,
    PayoutStatus.PENDING_USER_ACTION: S.WITHDRAWAL_PENDING_USER_ACTION,
    PayoutStatus.BRIDGE_USER_SIGNUP_PENDING: S.WITHDRAWAL_PENDING_USER_ACTION,
    PayoutStatus.COMPLETED: S.WITHDRAWAL_COMPLETED,
    PayoutStatus.FAILED: S.WITHDRAWAL_FAILED,
    PayoutStatus.CANCELED: S.WITHDRAWAL_CANCELED,
}
_CHAIN_TARGETS: Final[dict[str, S]] = {
    "submitted": S.WITHDRAWAL_PENDING,
    "confirmed": S.WITHDRAWAL_COMPLETED,
    "failed": S.WITHDRAWAL_FAILED,
}


class StepFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What the steps of a walk record: provider references, why it failed, who canceled."""

    airtm_payout_id: str | None = None
    transaction_hash: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    canceled_by: Literal["api", "provider"] = "provider"
    cancel_reason: str | None = None


class StatusUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """The result of applying provider news: the row after it and the events fired."""

    withdrawal: Withdrawal
    outcome: StatusOutcome
    events: list[str]


def airtm_target(airtm_status: str) -> S | None:
    """The withdrawal status an Airtm payout status maps to (case-insensitive), or ``None``."""
    parsed = parse_payout_status(airtm_status)
    return None if parsed is None else _AIRTM_TARGETS.get(parsed)


def plan_path(current: str, target: S, *, via_pending: bool = False) -> list[str] | None:
    """The machine events that lead from ``current`` to ``target``, in order.

    ``[]`` when already there; ``None`` when ``target`` is behind ``current`` or ``current``
    is terminal. ``PENDING`` and ``PENDING_USER_ACTION`` are peers (Airtm moves either way).
    ``via_pending`` passes through ``WITHDRAWAL_PENDING`` on the way to completion (a Stellar
    payment is known to have been submitted once it is confirmed).
    """
    if current in TERMINAL:
        return None
    if current == target:
        return []
    path = ["commit"] if current == S.WITHDRAWAL_CREATED else []
    if target == S.WITHDRAWAL_CREATED:
        return None
    if target == S.WITHDRAWAL_COMMITTED:
        return path or None
    if target == S.WITHDRAWAL_PENDING:
        return [*path, "process"]
    if target == S.WITHDRAWAL_PENDING_USER_ACTION:
        return [*path, "require_user_action"]
    if target == S.WITHDRAWAL_COMPLETED:
        if via_pending and current in (S.WITHDRAWAL_CREATED, S.WITHDRAWAL_COMMITTED):
            path.append("process")
        return [*path, "complete"]
    if target == S.WITHDRAWAL_FAILED:
        return ["fail"]
    # Canceled: from CREATED the payout never left (user's event); later, Airtm canceled it.
    return ["cancel" if current == S.WITHDRAWAL_CREATED else "cancel_by_provider"]


def _base(withdrawal: Withdrawal) -> dict[str, object]:
    return {
        "withdrawal_id": withdrawal.id,
        "user_id": withdrawal.user_id,
        "amount": format_amount(withdrawal.amount_minor),
    }


async def _emit(
    conn: asyncpg.Connection, withdrawal: Withdrawal, type: str, **data: object
) -> None:
    await emit(
        conn,
        marketplace_id=withdrawal.marketplace_id,
        type=type,
        resource_type="withdrawal",
        resource_id=withdrawal.id,
        data=_base(withdrawal) | data,
    )


async def _committed(conn: asyncpg.Connection, row: Withdrawal, facts: StepFacts) -> Withdrawal:
    await _emit(conn, row, "withdrawal.committed", currency=CURRENCY)
    return row


async def _pending(conn: asyncpg.Connection, row: Withdrawal, facts: StepFacts) -> Withdrawal:
    await _emit(
        conn,
        row,
        "withdrawal.pending",
        airtm_payout_id=row.airtm_payout_id,
        transaction_hash=row.transaction_hash,
    )
    return row


async def _user_action(conn: asyncpg.Connection, row: Withdrawal, facts: StepFacts) -> Withdrawal:
    data = {"withdrawal_id": row.id, "user_id": row.user_id, "action_required": ACTION_REQUIRED}
    await emit(
        conn,
        marketplace_id=row.marketplace_id,
        type="withdrawal.pending_user_action",
        resource_type="withdrawal",
        resource_id=row.id,
        data=data,
    )
    return row


async def _completed(conn: asyncpg.Connection, row: Withdrawal, facts: StepFacts) -> Withdrawal:
    transfer_id = await settle_hold(conn, row)
    row = await queries.mark_completed(conn, row.marketplace_id, row.id)
    await emit_balance_released(conn, row, transfer_id=transfer_id, reason="withdrawal_completed")
    assert row.completed_at is not None
    await _emit(
        conn,
        row,
        "withdrawal.completed",
        currency=CURRENCY,
        completed_at=format_time(row.completed_at),
        airtm_payout_id=row.airtm_payout_id,
        transaction_hash=row.transaction_hash,
    )
    return row


def _clip(text: str | None) -> str | None:
    return None if text is None else text[:_FAILURE_REASON_MAX]


async def _failed(conn: asyncpg.Connection, row: Withdrawal, facts: StepFacts) -> Withdrawal:
    transfer_id = await void_hold(conn, row)
    code = facts.failure_code or "withdrawal_failed"
    reason = _clip(facts.failure_reason) or code
    row = await queries.set_failure(
        conn, row.marketplace_id, row.id, failure_code=code, failure_reason=reason
    )
    await emit_balance_released(conn, row, transfer_id=transfer_id, reason="withdrawal_failed")
    await _emit(conn, row, "withdrawal.failed", reason=reason, error_code=code)
    return row


async def _canceled(conn: asyncpg.Connection, row: Withdrawal, facts: StepFacts) -> Withdrawal:
    transfer_id = await void_hold(conn, row)
    if facts.failure_reason is not None:
        row = await queries.set_failure(
            conn,
            row.marketplace_id,
            row.id,
            failure_code=facts.failure_code,
            failure_reason=_clip(facts.failure_reason),
        )
    await emit_balance_released(conn, row, transfer_id=transfer_id, reason="withdrawal_canceled")
    await _emit(
        conn,
        row,
        "withdrawal.canceled",
        canceled_by=facts.canceled_by,
        refunded_to_balance=True,
        reason=facts.cancel_reason,
    )
    return row


_Effect = Callable[[asyncpg.Connection, Withdrawal, StepFacts], Awaitable[Withdrawal]]
_EFFECTS: Final[dict[str, _Effect]] = {
    "commit": _committed,
    "process": _pending,
    "require_user_action": _user_action,
    "complete": _completed,
    "fail": _failed,
    "cancel": _canceled,
    "cancel_by_provider": _canceled,
}


async def walk(
    conn: asyncpg.Connection,
    withdrawal: Withdrawal,
    events: list[str],
    *,
    facts: StepFacts,
    actor: Actor,
) -> Withdrawal:
    """Fire ``events`` in order on a row the caller locked, each with its effects.

    Raises:
        InvalidTransition: an event the machine refuses from the status reached so far.
    """
    row = withdrawal
    for event in events:
        if event == "commit":
            # Before the transition: withdrawals_committed_status ties the two together.
            row = await queries.mark_committed(conn, row.marketplace_id, row.id)
        status = await fire(
            conn,
            "withdrawal",
            marketplace_id=row.marketplace_id,
            resource_id=row.id,
            current=row.status,
            event=event,
            actor=actor,
        )
        row = await _EFFECTS[event](conn, msgspec.structs.replace(row, status=status), facts)
    if events:
        # Re-read for the updated_at that fire() wrote.
        fresh = await queries.get_withdrawal(conn, row.marketplace_id, row.id)
        assert fresh is not None
        row = fresh
    return row


async def move_to(
    conn: asyncpg.Connection,
    withdrawal: Withdrawal,
    target: S,
    *,
    facts: StepFacts,
    actor: Actor,
    via_pending: bool = False,
) -> StatusUpdate:
    """Bring a locked, non-terminal row forward to ``target``; stale news changes nothing."""
    if withdrawal.status in TERMINAL:
        return StatusUpdate(withdrawal=withdrawal, outcome="final", events=[])
    path = plan_path(withdrawal.status, target, via_pending=via_pending)
    if path is None:
        return StatusUpdate(withdrawal=withdrawal, outcome="stale", events=[])
    row = withdrawal
    if facts.airtm_payout_id is not None or facts.transaction_hash is not None:
        row = await queries.set_provider_refs(
            conn,
            row.marketplace_id,
            row.id,
            airtm_payout_id=facts.airtm_payout_id,
            transaction_hash=facts.transaction_hash,
        )
    row = await walk(conn, row, path, facts=facts, actor=actor)
    return StatusUpdate(withdrawal=row, outcome="applied" if path else "unchanged", events=path)


def _target(
    withdrawal: Withdrawal, airtm_status: str | None, chain_outcome: ChainOutcome | None
) -> S | None:
    if (airtm_status is None) == (chain_outcome is None):
        raise InvalidRequest("give exactly one of airtm_status and chain_outcome")
    if airtm_status is not None:
        if withdrawal.destination_type != "airtm_balance":
            raise InvalidRequest("an Airtm status for a crypto withdrawal")
        return airtm_target(airtm_status)
    if withdrawal.destination_type != "crypto":
        raise InvalidRequest("a chain outcome for an Airtm withdrawal")
    assert chain_outcome is not None
    return _CHAIN_TARGETS[chain_outcome]


async def apply_provider_status(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    withdrawal_id: str,
    airtm_status: str | None = None,
    chain_outcome: ChainOutcome | None = None,
    airtm_payout_id: str | None = None,
    transaction_hash: str | None = None,
    failure_code: str | None = None,
    failure_reason: str | None = None,
    actor: Actor,
) -> StatusUpdate:
    """Apply what a provider says of a withdrawal, in the caller's transaction.

    Give ``airtm_status`` (the payout's status text, for ``airtm_balance``) or
    ``chain_outcome`` (``submitted`` / ``confirmed`` / ``failed``, for ``crypto``). The row is
    locked; the events from its status to the mapped one are fired in order, each with its
    event; completion posts the hold and settles it to the external account, failure and
    cancel void it. A completed chain payment passes through ``WITHDRAWAL_PENDING``.

    Returns:
        The row after it and the outcome: ``applied``, ``unchanged``, ``stale`` (behind the
        stored status), ``final`` (the stored status is terminal) or ``unrecognized`` (an
        Airtm status with no mapping: left as it is, for reconciliation to flag).

    Raises:
        WithdrawalNotFound: no such withdrawal in the marketplace.
        InvalidRequest: both or neither source given, or one that does not fit the type.
    """
    withdrawal = await queries.lock_withdrawal(conn, marketplace_id, withdrawal_id)
    if withdrawal is None:
        raise WithdrawalNotFound(withdrawal_id=withdrawal_id)
    target = _target(withdrawal, airtm_status, chain_outcome)
    if target is None:
        return StatusUpdate(withdrawal=withdrawal, outcome="unrecognized", events=[])
    if target == S.WITHDRAWAL_FAILED and failure_code is None and airtm_status is not None:
        failure_code = "payout_failed"
    facts = StepFacts(
        airtm_payout_id=airtm_payout_id,
        transaction_hash=transaction_hash,
        failure_code=failure_code,
        failure_reason=failure_reason,
    )
    return await move_to(
        conn, withdrawal, target, facts=facts, actor=actor, via_pending=chain_outcome is not None
    )
