"""Withdrawals (api.md 3.8, 5.6): create with a hold, commit, cancel, read and list.

Every function runs in the caller's transaction and changes nothing unless it returns: the
row is locked, the machine fired, the ledger posted and the events written together.
Provider calls happen outside: before the transaction the API layer reads the destination
account on Horizon (passed in as ``destination_account``), checks the Airtm recipient
(``AIRTM_USER_INVALID``) and, for a cancel, cancels the payout at Airtm; afterwards the worker
runs the operation started here (``WITHDRAWAL_PAYMENT`` or ``AIRTM_PAYOUT``), whose end is
applied by :func:`flows.withdrawal_hooks.withdrawal_hooks`. Provider news arriving later goes
through :func:`flows.withdrawal_status.apply_provider_status`.
"""

from datetime import datetime
from typing import Any, Final

import asyncpg
import msgspec

from common.errors import (
    InvalidTransition,
    UserNotFound,
    ValidationFailed,
    WithdrawalNotCommittable,
    WithdrawalNotFound,
)
from common.ids import new_id
from common.money import format_amount
from flows.audit import record_audit
from flows.balances import CURRENCY
from flows.events import emit
from flows.operations import Registry, start_operation
from flows.queries import users as user_queries
from flows.queries import withdrawals as queries
from flows.queries.operations import Operation, OperationKind, get_running_operation
from flows.queries.wallets import Wallet
from flows.queries.withdrawals import DestinationType, Withdrawal, WithdrawalPage
from flows.transitions import Actor
from flows.withdrawal_checks import airtm_email, check_request, crypto_wallet
from flows.withdrawal_hooks import withdrawal_hooks
from flows.withdrawal_ledger import emit_balance_reserved, place_hold
from flows.withdrawal_status import (
    ChainOutcome,
    StatusUpdate,
    StepFacts,
    apply_provider_status,
    walk,
)
from providers.stellar.port import AccountState
from statemachines import WithdrawalStatus

__all__ = [
    "ChainOutcome",
    "StatusUpdate",
    "Withdrawal",
    "WithdrawalPage",
    "WithdrawalStarted",
    "apply_provider_status",
    "cancel_withdrawal",
    "commit_withdrawal",
    "create_withdrawal",
    "get_withdrawal",
    "list_withdrawals",
    "withdrawal_hooks",
]

CANCEL_REASON_MAX: Final = 500


class WithdrawalStarted(msgspec.Struct, frozen=True, kw_only=True):
    """A created or committed withdrawal and the operation started for it (if any)."""

    withdrawal: Withdrawal
    operation: Operation | None


async def _start_payment(
    conn: asyncpg.Connection, registry: Registry, row: Withdrawal, wallet_id: str
) -> Operation:
    payload: dict[str, Any] = {
        "withdrawal_id": row.id,
        "wallet_id": wallet_id,
        "destination": row.destination_ref,
        "amount_minor": row.amount_minor,
        "memo": row.memo,
    }
    return await start_operation(
        conn,
        registry,
        marketplace_id=row.marketplace_id,
        kind=OperationKind.WITHDRAWAL_PAYMENT,
        resource_type="withdrawal",
        resource_id=row.id,
        payload=payload,
    )


async def _start_payout(
    conn: asyncpg.Connection, registry: Registry, row: Withdrawal, *, commit: bool
) -> Operation:
    # Airtm's code is the withdrawal id (the payout's idempotency key).
    payload: dict[str, Any] = {
        "withdrawal_id": row.id,
        "email": row.destination_ref,
        "amount_minor": row.amount_minor,
        "commit": commit,
        "notes": row.description,
    }
    return await start_operation(
        conn,
        registry,
        marketplace_id=row.marketplace_id,
        kind=OperationKind.AIRTM_PAYOUT,
        resource_type="withdrawal",
        resource_id=row.id,
        payload=payload,
    )


async def _insert_with_hold(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    user_id: str,
    amount_minor: int,
    destination_type: DestinationType,
    destination_ref: str,
    memo: str | None,
    description: str | None,
    withdrawal_id: str,
) -> Withdrawal:
    """Hold the amount, insert the row, emit ``withdrawal.created`` and ``balance.reserved``."""
    hold_id = await place_hold(
        conn,
        marketplace_id=marketplace_id,
        withdrawal_id=withdrawal_id,
        user_id=user_id,
        amount_minor=amount_minor,
    )
    row = await queries.insert_withdrawal(
        conn,
        marketplace_id=marketplace_id,
        withdrawal_id=withdrawal_id,
        user_id=user_id,
        amount_minor=amount_minor,
        destination_type=destination_type,
        destination_ref=destination_ref,
        memo=memo,
        hold_transfer_id=hold_id,
        description=description,
    )
    data = {
        "withdrawal_id": row.id,
        "user_id": user_id,
        "amount": format_amount(amount_minor),
        "currency": CURRENCY,
        "destination_type": destination_type,
        "destination_ref": destination_ref,
    }
    await emit(
        conn,
        marketplace_id=marketplace_id,
        type="withdrawal.created",
        resource_type="withdrawal",
        resource_id=row.id,
        data=data,
    )
    await emit_balance_reserved(conn, row)
    return row


async def create_withdrawal(
    conn: asyncpg.Connection,
    registry: Registry,
    *,
    marketplace_id: str,
    user_id: str,
    amount_minor: int,
    destination_type: DestinationType,
    destination_ref: str | None,
    memo: str | None = None,
    commit: bool = False,
    description: str | None = None,
    destination_account: AccountState | None = None,
    actor: Actor,
    withdrawal_id: str | None = None,
) -> WithdrawalStarted:
    """Create a withdrawal: validate, hold the amount, and start its operation.

    Crypto: ``destination_ref`` is a Stellar address other than the user's own wallet, which
    must be active; ``destination_account`` is the caller's Horizon read of the destination
    (``None`` skips the on-chain checks). The withdrawal commits at once and WITHDRAWAL_PAYMENT
    starts. Airtm: ``destination_ref`` is the recipient email (``None``: the linked account);
    AIRTM_PAYOUT starts with ``commit``, and ``commit=True`` also commits the row at once.
    Events: ``withdrawal.created``, ``balance.reserved`` (+ ``withdrawal.committed``).
    ``withdrawal_id`` lets the API derive the id from the Idempotency-Key, so a retry that takes
    over a request which died after its commit finds the same withdrawal (default: a new id).

    Raises:
        ValidationFailed, InvalidAmount: arguments the API layer should have refused, or
            Airtm amounts that are not whole cents; a memo the destination requires.
        UserNotFound: unknown user (``field="user_id"``).
        WithdrawalDestinationInvalid: ``reason`` invalid_address, own_wallet,
            account_not_found, no_trustline or invalid_email.
        WalletNotReady: crypto, and the user's wallet is missing or not activated.
        AirtmUserNotLinked: Airtm without an email and without a linked account.
        InsufficientFunds: available below the amount (nothing is written).
    """
    check_request(amount_minor, destination_type, memo, description)
    user = await user_queries.get_user(conn, marketplace_id, user_id)
    if user is None:
        raise UserNotFound(field="user_id")
    wallet: Wallet | None = None
    if destination_type == "crypto":
        wallet = await crypto_wallet(
            conn,
            marketplace_id=marketplace_id,
            user_id=user_id,
            destination=destination_ref,
            memo=memo,
            destination_account=destination_account,
        )
        assert destination_ref is not None
        destination = destination_ref
    else:
        destination = airtm_email(user, destination_ref, amount_minor)
    row = await _insert_with_hold(
        conn,
        marketplace_id=marketplace_id,
        user_id=user_id,
        amount_minor=amount_minor,
        destination_type=destination_type,
        destination_ref=destination,
        memo=memo,
        description=description,
        withdrawal_id=withdrawal_id or new_id("wd_"),
    )
    await record_audit(
        conn,
        marketplace_id=marketplace_id,
        actor_type=actor.type,
        actor_id=actor.id,
        action="WITHDRAWAL_CREATED",
        resource_type="withdrawal",
        resource_id=row.id,
        after={
            "status": row.status,
            "user_id": user_id,
            "amount": format_amount(amount_minor),
            "destination_type": destination_type,
            "destination_ref": destination,
        },
        request_id=actor.request_id,
    )
    if wallet is not None or commit:
        row = await walk(conn, row, ["commit"], facts=StepFacts(), actor=actor)
    if wallet is not None:
        operation = await _start_payment(conn, registry, row, wallet.id)
    else:
        operation = await _start_payout(conn, registry, row, commit=commit)
    return WithdrawalStarted(withdrawal=row, operation=operation)


async def _lock(conn: asyncpg.Connection, marketplace_id: str, withdrawal_id: str) -> Withdrawal:
    row = await queries.lock_withdrawal(conn, marketplace_id, withdrawal_id)
    if row is None:
        raise WithdrawalNotFound(withdrawal_id=withdrawal_id)
    return row


async def _refuse_while_creating(conn: asyncpg.Connection, row: Withdrawal) -> None:
    """An Airtm payout still being created cannot be committed or canceled yet (409).

    Its operation ends with the payout CREATED; a commit or cancel now would race it, and a
    payout created after a cancel would be left behind at Airtm.
    """
    if row.status != WithdrawalStatus.WITHDRAWAL_CREATED or row.destination_type == "crypto":
        return
    running = await get_running_operation(
        conn, row.marketplace_id, OperationKind.AIRTM_PAYOUT, "withdrawal", row.id
    )
    if running is not None:
        raise InvalidTransition(
            "the Airtm payout is still being created",
            resource_type="withdrawal",
            resource_id=row.id,
            current_state=row.status,
            allowed_states=[],
            operation_id=running.id,
        )


async def commit_withdrawal(
    conn: asyncpg.Connection,
    registry: Registry,
    *,
    marketplace_id: str,
    withdrawal_id: str,
    actor: Actor,
) -> WithdrawalStarted:
    """Commit an Airtm withdrawal in ``WITHDRAWAL_CREATED`` and start AIRTM_PAYOUT (commit).

    The operation adopts the payout created earlier (by code), commits it at Airtm and polls
    it to a final status. Events: ``withdrawal.committed``.

    Raises:
        WithdrawalNotFound: no such withdrawal in the marketplace.
        WithdrawalNotCommittable: a crypto withdrawal, or not ``WITHDRAWAL_CREATED``.
        InvalidTransition: the payout is still being created (retry shortly).
    """
    row = await _lock(conn, marketplace_id, withdrawal_id)
    if row.destination_type != "airtm_balance" or row.status != WithdrawalStatus.WITHDRAWAL_CREATED:
        raise WithdrawalNotCommittable(
            withdrawal_id=row.id, current_state=row.status, destination_type=row.destination_type
        )
    await _refuse_while_creating(conn, row)
    row = await walk(conn, row, ["commit"], facts=StepFacts(), actor=actor)
    operation = await _start_payout(conn, registry, row, commit=True)
    return WithdrawalStarted(withdrawal=row, operation=operation)


async def cancel_withdrawal(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    withdrawal_id: str,
    reason: str | None = None,
    actor: Actor,
) -> Withdrawal:
    """Cancel a withdrawal and void its hold: the amount is available again.

    Valid in ``WITHDRAWAL_CREATED`` and, for Airtm, ``WITHDRAWAL_PENDING_USER_ACTION``; the
    API layer cancels the payout at Airtm before this transaction. Events:
    ``balance.released`` (``withdrawal_canceled``), ``withdrawal.canceled`` (by ``api``).

    Raises:
        WithdrawalNotFound: no such withdrawal in the marketplace.
        InvalidTransition: any other status, or the payout is still being created.
        ValidationFailed: ``reason`` over 500 characters.
    """
    if reason is not None and len(reason) > CANCEL_REASON_MAX:
        raise ValidationFailed(fields=[{"field": "reason", "message": "at most 500 characters"}])
    row = await _lock(conn, marketplace_id, withdrawal_id)
    await _refuse_while_creating(conn, row)
    facts = StepFacts(canceled_by="api", cancel_reason=reason)
    return await walk(conn, row, ["cancel"], facts=facts, actor=actor)


async def get_withdrawal(
    conn: asyncpg.Connection, *, marketplace_id: str, withdrawal_id: str
) -> Withdrawal:
    """One withdrawal of the marketplace.

    Raises:
        WithdrawalNotFound: unknown here (another marketplace's id included).
    """
    row = await queries.get_withdrawal(conn, marketplace_id, withdrawal_id)
    if row is None:
        raise WithdrawalNotFound(withdrawal_id=withdrawal_id)
    return row


async def list_withdrawals(
    conn: asyncpg.Connection,
    *,
    marketplace_id: str,
    user_id: str | None = None,
    statuses: list[str] | None = None,
    destination_type: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 20,
) -> WithdrawalPage:
    """A page of the marketplace's withdrawals, newest first, filters combined with AND.

    ``after`` is the ``(created_at, id)`` of the previous page's last row (the API encodes it
    as the opaque cursor); ``created_after`` is inclusive, ``created_before`` exclusive.
    """
    return await queries.list_withdrawals(
        conn,
        marketplace_id,
        user_id=user_id,
        statuses=statuses,
        destination_type=destination_type,
        created_after=created_after,
        created_before=created_before,
        after=after,
        limit=limit,
    )
